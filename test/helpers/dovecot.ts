/**
 * A real Dovecot (Debian dovecot-imapd + dovecot-lmtpd) for tests: IMAP and LMTP on loopback, LMTP also on a Unix
 * socket, users from a passwd-file (or from a passdb/userdb block the test gives, e.g. PostgreSQL), Maildirs under
 * `mailRoot/%d/%n`. Run in the foreground from a config in its own temp dir; stop() stops it, start() starts it
 * again on the same ports and paths (a mailbox server that goes away and comes back).
 *
 * Started as root, Dovecot gives mail access as `nobody` (it refuses uid 0), so the mail root is handed to nobody.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import { freePorts, canConnect } from "./ports.ts";
import { peerPath } from "./peers.ts";
import { tempDir } from "./server.ts";
import { sleep } from "./wait.ts";

export interface DovecotOptions {
  /** address → password (PLAIN in the passwd-file). */
  users?: Record<string, string>;
  /** Replaces the passwd-file passdb/userdb with these config blocks (e.g. `passdb { driver = sql ... }`). */
  authConfig?: (mailRoot: string) => string;
  /** An existing mail tree to read (ringmta's DATA/mail), instead of one of Dovecot's own. */
  mailRoot?: string;
}

export interface Dovecot {
  dir: string;
  mailRoot: string;
  imapPort: number;
  lmtpPort: number;
  /** The LMTP Unix socket. */
  lmtpSocket: string;
  log(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** imaplib: a mailbox of `user` (default INBOX), each message's bytes. */
  fetchInbox(user: string, password: string, mailbox?: string): { exists: number; messages: Buffer[] };
  /** imaplib LIST: the names of `user`'s mailboxes. */
  mailboxes(user: string, password: string): string[];
  /** imaplib LOGIN only: true when Dovecot accepts the credentials. */
  canLogin(user: string, password: string): boolean;
  /** smtplib.LMTP over the Unix socket: Dovecot's reply code to RCPT TO:<address> (then RSET, QUIT). */
  lmtpRcpt(address: string): number;
}

function idOf(user: string, flag: "-u" | "-g"): number {
  const r = spawnSync("id", [flag, user], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`id ${flag} ${user}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

const IMAP_FETCH = `
import base64, imaplib, json, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.select(sys.argv[4])
assert typ == "OK", data
exists = int(data[0])
msgs = []
if exists > 0:
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "OK", data
    msgs = [base64.b64encode(p[1]).decode() for p in data if isinstance(p, tuple)]
m.logout()
print(json.dumps({"exists": exists, "messages": msgs}))
`;

const IMAP_LIST = `
import imaplib, json, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.list()
assert typ == "OK", data
m.logout()
# Each line: (flags) "separator" name
print(json.dumps([line.decode().rsplit(" ", 1)[-1].strip('"') for line in data]))
`;

const LMTP_RCPT = `
import smtplib, sys
m = smtplib.LMTP(sys.argv[1])
m.ehlo_or_helo_if_needed()
m.mail("probe@test.invalid")
code, _ = m.rcpt(sys.argv[2])
m.rset()
m.quit()
print(code)
`;

const IMAP_LOGIN = `
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
try:
    m.login(sys.argv[2], sys.argv[3])
except imaplib.IMAP4.error:
    sys.exit(3)
m.logout()
`;

export async function startDovecot(opts: DovecotOptions = {}): Promise<Dovecot> {
  const dir = tempDir("ringmta-dovecot-");
  chmodSync(dir, 0o755); // the auth service (default_internal_user) reads the passwd-file below
  const [imapPort, lmtpPort] = await freePorts(2);
  const conf = join(dir, "dovecot.conf");
  const logPath = join(dir, "dovecot.log");
  const passwd = join(dir, "passwd");
  const mailRoot = opts.mailRoot ?? join(dir, "mail");
  if (opts.mailRoot === undefined) mkdirSync(mailRoot, { mode: 0o700 });
  else if (process.getuid?.() === 0) {
    // nobody must reach the tree: the directories above it (temp dirs are 0700) become traversable.
    for (let d = dirname(mailRoot); d !== dirname(d); d = dirname(d)) chmodSync(d, statSync(d).mode | 0o111);
  }
  const runDir = join(dir, "run");
  const lmtpSocket = join(runDir, "lmtp");
  const users = opts.users ?? {};
  writeFileSync(passwd, Object.entries(users).map(([u, p]) => `${u}:{PLAIN}${p}::::::\n`).join(""), { mode: 0o644 });

  let identity: string[];
  if (process.getuid?.() === 0) {
    const uid = idOf("nobody", "-u");
    const gid = idOf("nobody", "-g");
    spawnSync("chown", ["-R", `${uid}:${gid}`, mailRoot]);
    identity = [`mail_uid = ${uid}`, `mail_gid = ${gid}`];
  } else {
    const me = userInfo();
    const group = spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim();
    identity = [
      `mail_uid = ${me.uid}`,
      `mail_gid = ${me.gid}`,
      `default_internal_user = ${me.username}`,
      `default_login_user = ${me.username}`,
      `default_internal_group = ${group}`,
      "service anvil {\n  chroot =\n}",
      "service imap-login {\n  chroot =\n}",
    ];
  }
  const auth =
    opts.authConfig?.(mailRoot) ??
    `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN ${passwd}\n}\nuserdb {\n  driver = passwd-file\n  args = ${passwd}\n}`;
  writeFileSync(
    conf,
    [
      `base_dir = ${runDir}`,
      `state_dir = ${join(dir, "state")}`,
      `log_path = ${logPath}`,
      `info_log_path = ${logPath}`,
      "protocols = imap lmtp",
      "listen = 127.0.0.1",
      "ssl = no",
      "disable_plaintext_auth = no",
      "auth_mechanisms = plain",
      `mail_location = maildir:${mailRoot}/%d/%n`,
      // The recipient is the full address: the passdb/userdb key is user@domain.
      "auth_username_format = %Lu",
      "lmtp_rcpt_check_quota = no",
      ...identity,
      auth,
      `service imap-login {\n  inet_listener imap {\n    port = ${imapPort}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
      `service lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtpPort}\n  }\n}`,
      "",
    ].join("\n"),
  );

  let proc: ChildProcess | null = null;
  let out = "";
  const log = (): string => {
    let l = out;
    try {
      l += readFileSync(logPath, "utf8");
    } catch {
      // no log file yet
    }
    return l;
  };

  const start = async (): Promise<void> => {
    const p = spawn(peerPath("dovecot")!, ["-c", conf, "-F"], { stdio: ["ignore", "pipe", "pipe"] });
    proc = p;
    p.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const deadline = Date.now() + 15_000;
    while (!(await canConnect(imapPort!)) || !(await canConnect(lmtpPort!)) || !existsSync(lmtpSocket)) {
      if (p.exitCode !== null) throw new Error(`dovecot exited with ${p.exitCode}:\n${log()}`);
      if (Date.now() > deadline) throw new Error(`dovecot not listening within 15 s:\n${log()}`);
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (p === null || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    spawnSync("doveadm", ["-c", conf, "stop"]);
    const t = setTimeout(() => p.kill("SIGKILL"), 5_000);
    await gone;
    clearTimeout(t);
    // Its listeners must be gone before a test counts on "down".
    const deadline = Date.now() + 5_000;
    while ((await canConnect(lmtpPort!)) && Date.now() < deadline) await sleep(50);
  };

  const python = (script: string, args: string[]) =>
    spawnSync(peerPath("python3")!, ["-c", script, String(imapPort), ...args], { encoding: "utf8", timeout: 30_000 });

  await start();
  return {
    dir,
    mailRoot,
    imapPort: imapPort!,
    lmtpPort: lmtpPort!,
    lmtpSocket,
    log,
    start,
    stop,
    fetchInbox(user, password, mailbox = "INBOX") {
      const r = python(IMAP_FETCH, [user, password, mailbox]);
      if (r.status !== 0) throw new Error(`imaplib failed: ${r.stderr}\ndovecot log:\n${log()}`);
      const got = JSON.parse(r.stdout) as { exists: number; messages: string[] };
      return { exists: got.exists, messages: got.messages.map((m) => Buffer.from(m, "base64")) };
    },
    mailboxes(user, password) {
      const r = python(IMAP_LIST, [user, password]);
      if (r.status !== 0) throw new Error(`imaplib failed: ${r.stderr}\ndovecot log:\n${log()}`);
      return JSON.parse(r.stdout) as string[];
    },
    lmtpRcpt(address) {
      const r = spawnSync(peerPath("python3")!, ["-c", LMTP_RCPT, lmtpSocket, address], { encoding: "utf8", timeout: 30_000 });
      if (r.status !== 0) throw new Error(`smtplib.LMTP failed: ${r.stderr}\ndovecot log:\n${log()}`);
      return Number(r.stdout.trim());
    },
    canLogin(user, password) {
      const r = python(IMAP_LOGIN, [user, password]);
      if (r.status !== 0 && r.status !== 3) throw new Error(`imaplib failed: ${r.stderr}\ndovecot log:\n${log()}`);
      return r.status === 0;
    },
  };
}
