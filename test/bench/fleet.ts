/**
 * Fleet throughput (issue 14, measured, not asserted), in one run: 1 KiB messages over 20 sessions with the bundled
 * load generator (native-bench), end to end into one Dovecot over LMTP (the clock stops when the last message is
 * in the mailbox) — once to one ringmta node directly, once through HAProxy (mode tcp, roundrobin, send-proxy-v2)
 * to two nodes. All processes share this machine's cores, so two nodes do not get twice the CPU.
 *
 *   bun test/bench/fleet.ts [messages=3000] [sessions=20]
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startDovecot } from "../helpers/dovecot.ts";
import { startHaproxy } from "../helpers/haproxy.ts";
import { BUN, REPO, startServer, type ListenerOpt, type Srv } from "../helpers/server.ts";

const N = Number(process.argv[2] ?? 3000);
const SESSIONS = Number(process.argv[3] ?? 20);
const BENCH = join(REPO, "native-bench", "main.ts");

function bench(port: number, to: string, maildir: string): Promise<Record<string, unknown>> {
  const args = [
    BENCH, "--port", String(port), "--connections", String(SESSIONS), "--messages", String(N), "--size", "1KiB",
    "--to", to, "--maildir", maildir, "--maildir-timeout", "300s", "--json", "--no-progress",
  ];
  return new Promise((resolve, reject) => {
    const p = spawn(BUN, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    p.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, unknown>) : reject(new Error(`bench exited ${code}: ${err} ${out}`))));
  });
}

const users = { "direct@example.test": "x", "fleet@example.test": "x" };
const dovecot = await startDovecot({ users });
const config = `[local]\ncatch_all = true\ndelivery = "lmtp"\nlmtp = "unix:${dovecot.lmtpSocket}"\n[limits]\nmax_connections_per_ip = 1000\n[metrics]\nlisten = ""\n`;
const plain: ListenerOpt[] = [{ name: "mx", tls: "none", auth: "off" }];
const proxied: ListenerOpt[] = [...plain, { name: "lb", tls: "none", auth: "off", proxy: { from: ["127.0.0.1/32"] } }];
const nodes: Srv[] = [];
try {
  const one = await startServer({ listeners: plain, config });
  nodes.push(one);
  const direct = await bench(one.ports.mx, "direct@example.test", join(dovecot.mailRoot, "example.test", "direct"));
  await one.dispose();

  const a = await startServer({ listeners: proxied, config });
  const b = await startServer({ listeners: proxied, config });
  nodes.push(a, b);
  const hap = await startHaproxy([{ to: [a.ports.lb!, b.ports.lb!], proxy: "v2" }]);
  let fleet: Record<string, unknown>;
  try {
    fleet = await bench(hap.ports[0]!, "fleet@example.test", join(dovecot.mailRoot, "example.test", "fleet"));
  } finally {
    await hap.stop();
  }
  console.log(JSON.stringify({ messages: N, sessions: SESSIONS, size: "1KiB", direct, fleet }, null, 2));
} finally {
  for (const n of nodes) await n.dispose();
  await dovecot.stop();
}
