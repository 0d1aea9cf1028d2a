/**
 * A throw-away Postfix instance on loopback for e2e tests (Debian package postfix): its own config_directory,
 * queue and Maildir base under /tmp/ringmta-test-postfix-<name>/ (a fixed name, so that the one system-wide change,
 * listing the directory in /etc/postfix/main.cf alternate_config_directories as `postfix -c` requires, stays one
 * entry however often tests run). No chroot; virtual(8) delivers to Maildirs as nobody:nogroup.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { canConnect, freePorts } from "./ports.ts";
import { sleep } from "./wait.ts";
import { allowConfigDir, POSTFIX_SERVICES } from "../../native-bench/peer-postfix.ts";


/** The postfix tools live in /usr/sbin (this module is also used outside vitest, so not through peers.ts). */
export function sbin(name: string): string | null {
  for (const d of ["/usr/sbin", "/usr/local/sbin", "/sbin", ...(process.env.PATH ?? "").split(":")]) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}
const NOBODY = 65534;

export interface Postfix {
  port: number;
  root: string;
  /** Files delivered to the Maildir of `local`@domain (new/ and cur/). */
  delivered(domain: string, local: string): string[];
  log(): string;
  stop(): Promise<void>;
}



function masterPid(root: string): number | null {
  try {
    const n = Number(readFileSync(join(root, "queue", "pid", "master.pid"), "utf8").trim());
    return n > 0 ? n : null;
  } catch {
    return null;
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function stopAt(root: string): Promise<void> {
  const conf = join(root, "conf");
  const pid = masterPid(root);
  if (!existsSync(join(conf, "main.cf")) || pid === null || !alive(pid)) return;
  spawnSync(sbin("postfix")!, ["-c", conf, "stop"], { encoding: "utf8" });
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
}

/**
 * Start Postfix `name`: smtpd on a free loopback port; `virtualDomains` are delivered to Maildirs
 * (<root>/mail/<domain>/<local>/ for each address in `mailboxes`); `extra` main.cf lines are appended.
 */
export async function startPostfix(name: string, o: { virtualDomains?: string[]; mailboxes?: string[]; extra?: string } = {}): Promise<Postfix> {
  const bin = sbin("postfix");
  if (bin === null) throw new Error("postfix not installed");
  const root = `/tmp/ringmta-test-postfix-${name}`;
  const conf = join(root, "conf");
  await stopAt(root);
  rmSync(root, { recursive: true, force: true });
  for (const d of [conf, join(root, "queue"), join(root, "data"), join(root, "mail")]) mkdirSync(d, { recursive: true });
  chmodSync(root, 0o755);
  chownSync(join(root, "data"), Number(spawnSync("id", ["-u", "postfix"], { encoding: "utf8" }).stdout.trim()), 0);
  chownSync(join(root, "mail"), NOBODY, NOBODY);
  const [port] = await freePorts(1);
  writeFileSync(join(conf, "master.cf"), [`127.0.0.1:${port} inet n - n - - smtpd`, ...POSTFIX_SERVICES].join("\n") + "\n");
  const vmail = (o.mailboxes ?? []).map((a) => `${a} ${a.split("@")[1]}/${a.split("@")[0]}/`).join("\n") + "\n";
  writeFileSync(join(conf, "vmailbox"), vmail);
  writeFileSync(
    join(conf, "main.cf"),
    `compatibility_level = 3.6
queue_directory = ${join(root, "queue")}
data_directory = ${join(root, "data")}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix-${name}.test
mydestination =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtpd_peername_lookup = no
virtual_mailbox_domains = ${(o.virtualDomains ?? []).join(" ")}
virtual_mailbox_base = ${join(root, "mail")}
virtual_mailbox_maps = texthash:${join(conf, "vmailbox")}
virtual_uid_maps = static:${NOBODY}
virtual_gid_maps = static:${NOBODY}
virtual_minimum_uid = 100
maillog_file_prefixes = /var, /dev/stdout, ${root}
maillog_file = ${join(root, "maillog")}
${o.extra ?? ""}
`,
  );
  allowConfigDir(conf);
  const r = spawnSync(bin, ["-c", conf, "start"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`postfix -c ${conf} start failed: ${r.stderr || r.stdout}`);
  const log = (): string => {
    try {
      return readFileSync(join(root, "maillog"), "utf8");
    } catch {
      return "";
    }
  };
  for (let i = 0; !(await canConnect(port)); i++) {
    if (i > 100) throw new Error(`postfix ${name} not listening on ${port}:\n${log()}`);
    await sleep(100);
  }
  return {
    port,
    root,
    delivered(domain, local) {
      const out: string[] = [];
      for (const sub of ["new", "cur"]) {
        const dir = join(root, "mail", domain, local, sub);
        if (!existsSync(dir)) continue;
        for (const f of spawnSync("ls", [dir], { encoding: "utf8" }).stdout.split("\n")) if (f) out.push(join(dir, f));
      }
      return out;
    },
    log,
    stop: () => stopAt(root),
  };
}
