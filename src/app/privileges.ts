/**
 * `[server] user` (CONTRACT "Storage layout"): started as root, ringmta binds its listeners, then becomes that
 * user (its group and supplementary groups) before it opens the spool, the Maildirs or starts workers. Started as
 * anyone else it never asks for root: the setting is then only checked against who we already are.
 */
import { chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import type { Logger } from "../observe/index.ts";

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** getpwnam(3) from /etc/passwd (node:process has no lookup by name that reports the gid). */
export function lookupUser(name: string, passwd = "/etc/passwd"): Account | null {
  for (const line of readFileSync(passwd, "utf8").split("\n")) {
    const f = line.split(":");
    if (f.length >= 4 && f[0] === name) {
      const uid = Number(f[2]);
      const gid = Number(f[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { name, uid, gid };
    }
  }
  return null;
}

type ProcessIds = typeof process & {
  initgroups?: (user: string, group: number) => void;
  setgroups?: (groups: number[]) => void;
};

/**
 * Become `user` when running as root. `handOver` are paths made by root for that user before the switch: the
 * data directory (created here when missing, so the user can fill it) and a certificate generated at first
 * start (so SIGHUP, running as the user, can read it again). Throws when the switch cannot be made: running on
 * as root against the operator's wish would be worse than not starting.
 */
export function dropPrivileges(user: string, handOver: string[], log: Logger): void {
  if (user === "") return;
  const p = process as ProcessIds;
  const euid = p.geteuid?.() ?? p.getuid?.();
  const account = lookupUser(user);
  if (account === null) throw new Error(`[server] user "${user}" does not exist (not in /etc/passwd).`);
  if (euid !== 0) {
    if (euid !== account.uid) {
      log.warn("privileges.not_root", { user, uid: euid, note: "not started as root: [server] user is not applied" });
    }
    return;
  }
  const [dataDir, ...files] = handOver;
  if (dataDir !== undefined) {
    if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chownSync(dataDir, account.uid, account.gid);
  }
  for (const f of files) chownSync(f, account.uid, account.gid);
  // Order matters: groups first (needs root), then the gid, then the uid, after which nothing can be undone.
  if (typeof p.initgroups === "function") p.initgroups(user, account.gid);
  else if (typeof p.setgroups === "function") p.setgroups([account.gid]);
  p.setgid!(account.gid);
  p.setuid!(account.uid);
  if (p.getuid!() !== account.uid || p.getgid!() !== account.gid) {
    throw new Error(`could not switch to user "${user}" (uid ${account.uid}).`);
  }
  log.info("privileges.dropped", { user, uid: account.uid, gid: account.gid });
}
