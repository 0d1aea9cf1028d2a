/**
 * Outbound throughput (issue 4, measured, not asserted): N messages of 1 KiB injected with Postfix's smtp-source,
 * relayed to Postfix's smtp-sink — once by ringmta (relay.routes → the sink), once by Postfix (relayhost → the
 * same sink). The clock runs from the first injected message until the sender's queue is empty again.
 *
 *   bun test/bench/outbound-relay.ts [messages=10000] [sessions=20]
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, canConnect } from "../helpers/ports.ts";
import { sbin as peerPath, startPostfix } from "../helpers/postfix.ts";
import { sleep } from "../helpers/wait.ts";

const N = Number(process.argv[2] ?? 10_000);
const SESSIONS = Number(process.argv[3] ?? 20);
const REPO = new URL("../../", import.meta.url).pathname;

async function until(cond: () => boolean, what: string, timeoutMs = 600_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

function inject(port: number): number {
  const t0 = performance.now();
  const r = spawnSync(peerPath("smtp-source")!, ["-s", String(SESSIONS), "-m", String(N), "-l", "1024", "-f", "alice@example.test", "-t", "u@sink.test", `127.0.0.1:${port}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`smtp-source: ${r.stderr}`);
  return performance.now() - t0;
}

function countFiles(dir: string, suffix = ""): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) n += countFiles(join(dir, e.name), suffix);
      else if (e.name.endsWith(suffix)) n++;
    }
  } catch {
    // not there (yet)
  }
  return n;
}

const [sinkPort] = await freePorts(1);
const sink = spawn(peerPath("smtp-sink")!, ["-u", "nobody", `127.0.0.1:${sinkPort}`, "1024"], { stdio: "ignore" });
while (!(await canConnect(sinkPort))) await sleep(50);
console.error("sink up");

// ringmta
const dir = mkdtempSync(join(tmpdir(), "ringmta-bench-out-"));
const [mx, metrics] = await freePorts(2);
writeFileSync(
  join(dir, "ringmta.toml"),
  `hostname = "bench.ringmta.test"
data_dir = "data"
[checks]                           # no DNS checks: this test/bench is not about them
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
[[listeners]]
name = "mx"
host = "127.0.0.1"
port = ${mx}
tls = "none"
auth = "off"
[local]
domains = ["example.test"]
catch_all = true
[relay]
networks = ["127.0.0.0/8"]
[relay.routes]
"sink.test" = "127.0.0.1:${sinkPort}"
[limits]
max_connections_per_ip = 1000
[metrics]
listen = "127.0.0.1:${metrics}"
`,
);
const server = spawn(join(REPO, "node_modules/.bin/bun"), [join(REPO, "src/main.ts"), "serve", "--config", join(dir, "ringmta.toml")], { stdio: "ignore" });
while (!(await canConnect(mx))) await sleep(50);
console.error("ringmta up");
const queue = join(dir, "data", "queue");
let t0 = performance.now();
const injR = inject(mx);
console.error(`injected in ${Math.round(injR)} ms`);
await until(() => countFiles(queue, ".msg") === 0, "ringmta queue empty");
const ringMs = performance.now() - t0;
server.kill("SIGTERM");
await new Promise((r) => server.once("exit", r));
rmSync(dir, { recursive: true, force: true });

// Postfix
const pf = await startPostfix("relay", { extra: `relayhost = [127.0.0.1]:${sinkPort}\nsmtp_tls_security_level = none\n` });
const pq = join(pf.root, "queue");
t0 = performance.now();
const injP = inject(pf.port);
await until(() => ["incoming", "active", "deferred", "maildrop", "hold"].every((d) => countFiles(join(pq, d)) === 0), "postfix queue empty");
const pfMs = performance.now() - t0;
const sent = (pf.log().match(/status=sent/g) ?? []).length;
await pf.stop();
sink.kill("SIGTERM");

const rate = (ms: number): number => Math.round(N / (ms / 1000));
console.log(`messages: ${N} x 1 KiB, ${SESSIONS} injecting sessions, sink: smtp-sink`);
console.log(`ringmta: ${rate(ringMs)} msg/s end to end (${(ringMs / 1000).toFixed(2)} s; injection ${(injR / 1000).toFixed(2)} s)`);
console.log(`postfix: ${rate(pfMs)} msg/s end to end (${(pfMs / 1000).toFixed(2)} s; injection ${(injP / 1000).toFixed(2)} s; ${sent} status=sent)`);
console.log(`ratio ringmta/postfix: ${(pfMs / ringMs).toFixed(2)}`);
process.exit(0);
