/**
 * Issue 6 acceptance / CONTRACT "Storage layout": Dovecot reads ringmta's Maildir with
 * `mail_location = maildir:DATA/mail/%d/%n`. A real Dovecot (Debian dovecot-imapd) runs in the foreground from a
 * config in a temp dir on a free loopback port; Python's imaplib logs in, SELECTs INBOX and FETCHes BODY.PEEK[]
 * (RFC 3501 §6.4.5), and the bytes are exactly the Maildir file: the trace fields, then the message as sent.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, expect } from "vitest";
import {
  HOSTNAME,
  SmtpClient,
  canConnect,
  freePorts,
  havePeer,
  maildirFiles,
  peerPath,
  peerTest,
  readDelivered,
  sendMail,
  sleep,
  tempDir,
  trickyMessage,
  uniqueId,
  useServer,
  waitFor,
  type Peer,
} from "../helpers/index.ts";

const srv = useServer();
const PASSWORD = "imap-pass-alice";

interface Dovecot {
  proc: ChildProcess;
  conf: string;
  logPath: string;
  port: number;
}
let dovecot: Dovecot | null = null;

function idOf(user: string, flag: "-u" | "-g"): number {
  const r = spawnSync("id", [flag, user], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`id ${flag} ${user}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/**
 * Dovecot refuses to give mail access to root (uid/gid 0) and to run its login and internal services as root.
 * Started as root, it reads the Maildirs as `nobody`, so the mail tree is handed to that user and the directories
 * above it are made traversable; started as an ordinary user, it runs every service as that user and group,
 * unchrooted (checked by hand with `runuser -u nobody -- dovecot -c CONF -F`).
 */
async function startDovecot(dataDir: string, serverDir: string): Promise<Dovecot> {
  const dir = tempDir("ringmta-dovecot-");
  chmodSync(dir, 0o755); // the auth service (default_internal_user) reads the passwd-file below
  const [port] = await freePorts(1);
  const conf = join(dir, "dovecot.conf");
  const logPath = join(dir, "dovecot.log");
  const passwd = join(dir, "passwd");
  writeFileSync(passwd, `alice@example.test:{PLAIN}${PASSWORD}::::::\n`, { mode: 0o644 });

  const root = process.getuid?.() === 0;
  let identity: string[];
  if (root) {
    const uid = idOf("nobody", "-u");
    const gid = idOf("nobody", "-g");
    spawnSync("chown", ["-R", `${uid}:${gid}`, join(dataDir, "mail")]);
    chmodSync(serverDir, 0o711);
    chmodSync(dataDir, 0o711);
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
  writeFileSync(
    conf,
    [
      `base_dir = ${join(dir, "run")}`,
      `state_dir = ${join(dir, "state")}`,
      `log_path = ${logPath}`,
      `info_log_path = ${logPath}`,
      "protocols = imap",
      "listen = 127.0.0.1",
      "ssl = no",
      "disable_plaintext_auth = no",
      "auth_mechanisms = plain",
      `mail_location = maildir:${join(dataDir, "mail")}/%d/%n`,
      ...identity,
      `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN ${passwd}\n}`,
      `userdb {\n  driver = passwd-file\n  args = ${passwd}\n}`,
      `service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
      "",
    ].join("\n"),
  );

  const proc = spawn(peerPath("dovecot")!, ["-c", conf, "-F"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  proc.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const d: Dovecot = { proc, conf, logPath, port: port! };
  dovecot = d;
  const log = (): string => {
    let l = out;
    try {
      l += readFileSync(logPath, "utf8");
    } catch {
      // no log file yet
    }
    return l;
  };
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port!))) {
    if (proc.exitCode !== null) throw new Error(`dovecot exited with ${proc.exitCode}:\n${log()}`);
    if (Date.now() > deadline) throw new Error(`dovecot not listening on ${port} within 15 s:\n${log()}`);
    await sleep(100);
  }
  return d;
}

async function stopDovecot(): Promise<void> {
  const d = dovecot;
  if (!d || d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  dovecot = null;
  const gone = new Promise((r) => d.proc.once("exit", r));
  spawnSync("doveadm", ["-c", d.conf, "stop"]);
  const t = setTimeout(() => d.proc.kill("SIGKILL"), 5_000);
  await gone;
  clearTimeout(t);
}

afterAll(stopDovecot, 15_000);

/** imaplib: LOGIN, SELECT INBOX, FETCH 1:* (BODY.PEEK[]), LOGOUT; the messages as base64 so no byte is lost. */
const IMAP_SCRIPT = `
import base64, imaplib, json, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.select("INBOX")
assert typ == "OK", data
exists = int(data[0])
typ, data = m.fetch("1:*", "(BODY.PEEK[])")
assert typ == "OK", data
msgs = [base64.b64encode(p[1]).decode() for p in data if isinstance(p, tuple)]
m.logout()
print(json.dumps({"exists": exists, "messages": msgs}))
`;

// Both programs are needed; the test is named after the first one missing.
const need: Peer = havePeer("dovecot") ? "python3" : "dovecot";

peerTest(
  need,
  "Dovecot serves a message ringmta delivered; imaplib FETCHes it byte-identical to the Maildir file",
  async () => {
    const mid = uniqueId("dovecot");
    const message = trickyMessage(mid, "alice@example.test");
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    const r = await sendMail(c, "sender@remote.test", ["alice@example.test"], message);
    expect(r.final?.code, r.final?.raw).toBe(250);
    await c.cmd("QUIT");
    c.destroy();
    const [file] = await waitFor(() => {
      const f = maildirFiles(srv().dataDir, "example.test", "alice");
      return f.length === 1 ? f : null;
    }, 15_000);

    // The file: Return-Path, Delivered-To, Received, then exactly the message as sent (CONTRACT "Storage layout").
    const onDisk = readFileSync(file!);
    const d = readDelivered(file!);
    expect(d.trace.returnPath).toBe("<sender@remote.test>");
    expect(d.trace.deliveredTo).toBe("alice@example.test");
    expect(d.trace.received).toContain(`by ${HOSTNAME}`);
    expect(d.body.equals(message)).toBe(true);

    const dv = await startDovecot(srv().dataDir, srv().dir);
    const py = spawnSync(peerPath("python3")!, ["-c", IMAP_SCRIPT, String(dv.port), "alice@example.test", PASSWORD], {
      encoding: "utf8",
      timeout: 30_000,
    });
    const dlog = (): string => {
      try {
        return readFileSync(dv.logPath, "utf8");
      } catch {
        return "(no dovecot log)";
      }
    };
    expect(py.status, `imaplib failed: ${py.stderr}\ndovecot log:\n${dlog()}`).toBe(0);
    const got = JSON.parse(py.stdout) as { exists: number; messages: string[] };
    expect(got.exists).toBe(1);
    expect(got.messages.length).toBe(1);
    const fetched = Buffer.from(got.messages[0]!, "base64");
    expect(fetched.length).toBe(onDisk.length);
    expect(fetched.equals(onDisk)).toBe(true);
    await stopDovecot();
  },
  90_000,
);
