/**
 * Postfix as a durable MTA: smtpd on a free loopback port, virtual(8) delivering to Maildir for bench.test, in its
 * own config_directory and queue under a temp dir (`postfix -c DIR start` / `stop`). Postfix fsyncs the queue file
 * before its 250 and the Maildir file before it counts a delivery, like ringmta.
 *
 * `postfix -c DIR` wants DIR listed in /etc/postfix/main.cf's alternate_config_directories; that line is the one
 * system-wide change the bench makes, announced on stderr. The temp dir has a fixed name so the line stays one
 * entry however often the bench runs.
 */
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_DOMAIN, RUN_MAILBOXES, runLocal, type Peer, type RunningPeer } from "./peer.ts";
import { commandLine, freePorts, runSync, waitForSmtp, which } from "./proc.ts";

const ROOT = join(tmpdir(), "ringmta-bench-postfix");
const CONF = join(ROOT, "conf");
const SYSTEM_MAIN_CF = "/etc/postfix/main.cf";
/** virtual(8) refuses root; deliveries are written as nobody:nogroup. */
const VMAIL_ID = 65534;

/**
 * master(5) rows of every service a loopback Postfix instance needs (columns: service type private unpriv chroot
 * wakeup maxproc command). No chroot: a temp queue has none of the files a chroot jail needs. Shared with the
 * test suite's Postfix helper.
 */
export const POSTFIX_SERVICES = [
  "pickup unix n - n 60 1 pickup",
  "cleanup unix n - n - 0 cleanup",
  "qmgr unix n - n 300 1 qmgr",
  "tlsmgr unix - - n 1000? 1 tlsmgr",
  "rewrite unix - - n - - trivial-rewrite",
  "bounce unix - - n - 0 bounce",
  "defer unix - - n - 0 bounce",
  "trace unix - - n - 0 bounce",
  "verify unix - - n - 1 verify",
  "flush unix n - n 1000? 0 flush",
  "proxymap unix - - n - - proxymap",
  "proxywrite unix - - n - 1 proxymap",
  "smtp unix - - n - - smtp",
  "relay unix - - n - - smtp",
  "showq unix n - n - - showq",
  "error unix - - n - - error",
  "retry unix - - n - - error",
  "discard unix - - n - - discard",
  "local unix - n n - - local",
  "virtual unix - n n - - virtual",
  "lmtp unix - - n - - lmtp",
  "anvil unix - - n - 1 anvil",
  "scache unix - - n - 1 scache",
  "postlog unix-dgram n - n - 1 postlogd",
];

function masterCf(port: number): string {
  return [`127.0.0.1:${port} inet n - n - - smtpd`, ...POSTFIX_SERVICES].join("\n") + "\n";
}

function mainCf(): string {
  return `# Written by ringmta's native-bench (compare). A throw-away instance on loopback.
compatibility_level = 3.6
queue_directory = ${join(ROOT, "queue")}
data_directory = ${join(ROOT, "data")}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix.bench.localhost
mydomain = bench.localhost
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
default_transport = error:the bench instance relays nothing
local_recipient_maps =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP
message_size_limit = 52428800
virtual_mailbox_domains = ${BENCH_DOMAIN}
virtual_mailbox_base = ${join(ROOT, "mail")}
virtual_mailbox_maps = texthash:${join(CONF, "vmailbox")}
virtual_uid_maps = static:${VMAIL_ID}
virtual_gid_maps = static:${VMAIL_ID}
virtual_minimum_uid = 100
virtual_mailbox_limit = 0
maillog_file_prefixes = /var, /dev/stdout, ${ROOT}
maillog_file = ${join(ROOT, "maillog")}
`;
}

/**
 * Lists `conf` in the system main.cf's alternate_config_directories (creating the line, or the file, if needed),
 * as `postfix -c` requires. Shared with the test suite's Postfix helper.
 */
export function allowConfigDir(conf: string = CONF): void {
  const cur = existsSync(SYSTEM_MAIN_CF) ? readFileSync(SYSTEM_MAIN_CF, "utf8") : "";
  const m = /^alternate_config_directories\s*=(.*)$/m.exec(cur);
  if (m && m[1]!.split(/[\s,]+/).includes(conf)) return;
  console.error(`adding ${conf} to alternate_config_directories in ${SYSTEM_MAIN_CF} (required by postfix -c)`);
  if (m) {
    writeFileSync(SYSTEM_MAIN_CF, cur.replace(m[0], `${m[0].trimEnd()} ${conf}`));
  } else {
    mkdirSync("/etc/postfix", { recursive: true });
    appendFileSync(SYSTEM_MAIN_CF, `${cur && !cur.endsWith("\n") ? "\n" : ""}alternate_config_directories = ${conf}\n`);
  }
}

function mailboxList(): string {
  let s = "";
  for (let i = 1; i <= RUN_MAILBOXES; i++) s += `${runLocal(i)}@${BENCH_DOMAIN} ${BENCH_DOMAIN}/${runLocal(i)}/\n`;
  return s;
}

function postfix(...args: string[]) {
  return runSync(which("postfix")!, ["-c", CONF, ...args], { timeoutMs: 60_000 });
}

function masterPid(): number | null {
  try {
    const n = Number(readFileSync(join(ROOT, "queue", "pid", "master.pid"), "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopInstance(): Promise<void> {
  if (!existsSync(join(CONF, "main.cf"))) return;
  const pid = masterPid();
  if (pid === null || !alive(pid)) return;
  postfix("stop");
  for (let i = 0; i < 100 && alive(pid); i++) await Bun.sleep(100);
}

export function postfixPeer(): Peer {
  return {
    name: "Postfix",
    role: "durable, delivers to Maildir",
    missing() {
      if (!which("postfix")) return "skipped (install: apt-get install -y postfix)";
      if (process.getuid?.() !== 0) return "skipped (postfix -c DIR start needs root)";
      return null;
    },
    async start(): Promise<RunningPeer> {
      await stopInstance();
      rmSync(ROOT, { recursive: true, force: true });
      for (const d of [CONF, join(ROOT, "queue"), join(ROOT, "data"), join(ROOT, "mail")]) mkdirSync(d, { recursive: true });
      chmodSync(ROOT, 0o755);
      chownSync(join(ROOT, "data"), 102, 105);
      chownSync(join(ROOT, "mail"), VMAIL_ID, VMAIL_ID);
      const [port] = await freePorts(1);
      writeFileSync(join(CONF, "main.cf"), mainCf());
      writeFileSync(join(CONF, "master.cf"), masterCf(port!));
      // virtual(8) allows no regexp substitution in virtual_mailbox_maps, so the run mailboxes are listed one by one;
      // a trailing "/" makes each a Maildir.
      writeFileSync(join(CONF, "vmailbox"), mailboxList());
      allowConfigDir();
      const r = postfix("start");
      if (r.status !== 0) throw new Error(`postfix -c ${CONF} start failed: ${r.stderr || r.stdout}`);
      await waitForSmtp(port!, 20_000).catch((e: Error) => {
        throw new Error(`Postfix: ${e.message}\n${readLog()}`);
      });
      return {
        port: port!,
        command: commandLine(which("postfix")!, ["-c", CONF, "start"]),
        pid: masterPid() ?? 0,
        maildir: (local) => join(ROOT, "mail", BENCH_DOMAIN, local),
        async stop() {
          await stopInstance();
        },
        remove: () => rmSync(ROOT, { recursive: true, force: true }),
      };
    },
  };
}

function readLog(): string {
  try {
    return readFileSync(join(ROOT, "maillog"), "utf8").slice(-4000);
  } catch {
    return "(no maillog)";
  }
}
