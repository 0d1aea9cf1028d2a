/**
 * `bun run bench -- flood`: fairness under a garbage flood (issue 15, CONTRACT "Fairness"). In one run:
 *   1. idle:  one normal client session sends messages back to back for --idle (default: --duration) against a
 *             server with nothing else to do: its end-of-data latency (the dot to the 250) is the baseline;
 *   2. flood: --garbage N connections from --sources K addresses (127.0.0.2 … 127.0.0.(K+1), bound with
 *             localAddress) send random bytes as fast as their sockets drain for --duration, in a child process
 *             (native-bench/flood-garbage.ts) so that the pumping never delays the measuring client, while the same
 *             normal client goes on. A garbage connection the server closes is replaced at once.
 * Reported: p50/p99 end-of-data latency in both phases and their ratio (the acceptance: p50 during the flood within
 * 5x of idle, no failed transaction), failed transactions, how the garbage connections ended, and the server's CPU
 * share in each phase (utime + stime from /proc/<pid>/stat; only when the bench started the server itself, or with
 * --pid).
 *
 * Starts ringmta itself (defaults of [limits], one plaintext listener) unless --port names a running server.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "./args.ts";
import type { GarbageSummary } from "./flood-garbage.ts";
import { LatencyHistogram, type Percentiles } from "./histogram.ts";
import { REPO, startRingmta } from "./peer-ringmta.ts";
import { BENCH_DOMAIN } from "./peer.ts";
import { parseDuration } from "./units.ts";

export const FLOOD_USAGE = `usage: bun run bench -- flood [options]
  --garbage N        garbage connections kept open during the flood (default 200)
  --sources K        source addresses 127.0.0.2 … 127.0.0.(K+1) for them (default 4)
  --duration D       length of the flood, e.g. 30s (default 30s)
  --idle D           length of the idle phase before it (default: --duration)
  --size S           bytes of each normal message (default 1024)
  --to ADDR          the normal client's recipient (default normal@bench.test, local on the server it starts)
  --host H --port P  a running server (default: start ringmta in a temp dir)
  --pid PID          that server's pid, for its CPU share
  --json             one JSON object instead of the summary`;

export interface PhaseResult {
  seconds: number;
  transactions: number;
  failed: number;
  firstFailure: string | null;
  endOfData: Percentiles;
  /** Server CPU (user + system) over the phase, in % of one core; null when the pid is unknown. */
  serverCpuPercent: number | null;
}

export interface FloodResult {
  target: string;
  garbageConnections: number;
  sources: string[];
  idle: PhaseResult;
  flood: PhaseResult;
  /** flood p50 / idle p50 (acceptance: at most 5). */
  p50Ratio: number;
  /** Server CPU the flood added: flood share minus idle share (% of one core). */
  floodCpuPercent: number | null;
  garbage: GarbageSummary;
  ok: boolean;
}

const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts in 1/100 s on every architecture we run on

/** utime + stime of a process (and its threads), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Reads whole replies (RFC 5321 §4.2: "NNN-" continues) off a socket. */
class LineClient {
  private buf = "";
  private waiting: ((line: string) => void) | null = null;
  private closedWith: Error | null = null;
  constructor(readonly sock: Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf += d.toString("latin1");
      this.wake();
    });
    sock.on("close", () => {
      this.closedWith ??= new Error("connection closed");
      this.wake();
    });
    sock.on("error", (e) => {
      this.closedWith = e;
      this.wake();
    });
  }
  private wake(): void {
    const w = this.waiting;
    if (w === null) return;
    const r = this.take();
    if (r !== null) {
      this.waiting = null;
      w(r);
    } else if (this.closedWith !== null) {
      this.waiting = null;
      w(`000 ${this.closedWith.message}`);
    }
  }
  /** The last line of the next complete reply, or null. */
  private take(): string | null {
    for (;;) {
      const nl = this.buf.indexOf("\r\n");
      if (nl < 0) return null;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 2);
      if (line[3] !== "-") return line;
    }
  }
  reply(): Promise<string> {
    const r = this.take();
    if (r !== null) return Promise.resolve(r);
    if (this.closedWith !== null) return Promise.resolve(`000 ${this.closedWith.message}`);
    return new Promise((resolve) => (this.waiting = resolve));
  }
  async cmd(line: string): Promise<string> {
    this.sock.write(line + "\r\n");
    return this.reply();
  }
}

async function openClient(host: string, port: number): Promise<LineClient> {
  const sock = connect({ host, port });
  sock.setNoDelay(true);
  const c = new LineClient(sock);
  const greeting = await c.reply();
  if (!greeting.startsWith("220")) throw new Error(`greeting: ${greeting}`);
  const ehlo = await c.cmd("EHLO normal.bench.ringmta");
  if (!ehlo.startsWith("250")) throw new Error(`EHLO: ${ehlo}`);
  return c;
}

function message(size: number, n: number, to: string): string {
  const head = `From: <normal@client.test>\r\nTo: <${to}>\r\nSubject: flood bench ${n}\r\nMessage-ID: <flood.${n}.${Date.now()}@client.test>\r\n\r\n`;
  const line = "x".repeat(76) + "\r\n";
  let body = "";
  while (head.length + body.length < size) body += line;
  return head + body + ".\r\n";
}

/** The normal client: one session, transactions back to back until `until`; a broken session is reopened. */
async function normalClient(host: string, port: number, size: number, to: string, until: () => boolean, pid: number | null): Promise<PhaseResult> {
  const hist = new LatencyHistogram();
  let transactions = 0;
  let failed = 0;
  let firstFailure: string | null = null;
  const fail = (why: string): void => {
    failed++;
    firstFailure ??= why;
  };
  const cpu0 = pid !== null ? cpuSeconds(pid) : 0;
  const t0 = performance.now();
  let c: LineClient | null = null;
  while (!until()) {
    try {
      c ??= await openClient(host, port);
      transactions++;
      const mail = await c.cmd("MAIL FROM:<normal@client.test>");
      const rcpt = await c.cmd(`RCPT TO:<${to}>`);
      const data = await c.cmd("DATA");
      if (!mail.startsWith("250") || !rcpt.startsWith("250") || !data.startsWith("354")) {
        fail(`${mail} / ${rcpt} / ${data}`);
        await c.cmd("RSET");
        continue;
      }
      const sent = performance.now();
      c.sock.write(message(size, transactions, to));
      const done = await c.reply();
      hist.record(performance.now() - sent);
      if (!done.startsWith("250")) fail(done);
      if (done.startsWith("000")) c = null;
    } catch (e) {
      fail((e as Error).message);
      c?.sock.destroy();
      c = null;
    }
  }
  c?.sock.end("QUIT\r\n");
  const seconds = (performance.now() - t0) / 1000;
  return {
    seconds: Math.round(seconds * 10) / 10,
    transactions,
    failed,
    firstFailure,
    endOfData: hist.summary(),
    serverCpuPercent: pid !== null ? Math.round(((cpuSeconds(pid) - cpu0) / seconds) * 1000) / 10 : null,
  };
}

function runGarbageChild(host: string, port: number, n: number, sources: string[], durationMs: number): Promise<GarbageSummary> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [join(REPO, "native-bench", "flood-garbage.ts"), "--host", host, "--port", String(port), "--connections", String(n), "--sources", sources.join(","), "--duration-ms", String(durationMs)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString("utf8")));
    p.once("error", reject);
    p.once("exit", (code) => {
      try {
        resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "") as GarbageSummary);
      } catch {
        reject(new Error(`flood-garbage exited ${code} without a summary: ${out}`));
      }
    });
  });
}

function ms(p: Percentiles): string {
  return `p50 ${p.p50} ms, p99 ${p.p99} ms (n=${p.count})`;
}

export function formatFlood(r: FloodResult): string {
  const cpu = (x: number | null): string => (x === null ? "n/a" : `${x}% of one core`);
  const g = r.garbage;
  return [
    `flood against ${r.target}: ${r.garbageConnections} garbage connections from ${r.sources.join(", ")}`,
    `idle : ${r.idle.transactions} transactions in ${r.idle.seconds} s, ${r.idle.failed} failed; end of data ${ms(r.idle.endOfData)}; server CPU ${cpu(r.idle.serverCpuPercent)}`,
    `flood: ${r.flood.transactions} transactions in ${r.flood.seconds} s, ${r.flood.failed} failed; end of data ${ms(r.flood.endOfData)}; server CPU ${cpu(r.flood.serverCpuPercent)}`,
    `p50 during the flood / idle: ${r.p50Ratio}x (acceptance: at most 5x, no failed transaction) -> ${r.ok ? "ok" : "NOT MET"}`,
    `server CPU spent on the flood (flood phase minus idle phase; within noise it can come out negative): ${cpu(r.floodCpuPercent)}`,
    `garbage: ${g.opened} connections opened, ${g.closedByErrorLimit} closed by the error limit (421 4.7.0), ${g.refusedAtConnect} refused at connect, ${g.closedOther} closed otherwise, ${g.openAtEnd} still open at the end; ${g.errorReplies} error replies; ${(g.bytesWritten / 1e6).toFixed(1)} MB written`,
    ...(r.idle.firstFailure || r.flood.firstFailure ? [`first failure: ${r.flood.firstFailure ?? r.idle.firstFailure}`] : []),
  ].join("\n");
}

export async function runFlood(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        garbage: { type: "string" },
        sources: { type: "string" },
        duration: { type: "string" },
        idle: { type: "string" },
        size: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        pid: { type: "string" },
        to: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${FLOOD_USAGE}`);
  }
  if (values.help) {
    console.log(FLOOD_USAGE);
    return 0;
  }
  const int = (name: string, v: string | undefined, def: number, min: number, max: number): number => {
    const n = v === undefined ? def : Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected an integer from ${min} to ${max}\n${FLOOD_USAGE}`);
    return n;
  };
  const dur = (name: string, v: string | undefined, def: number): number => {
    if (v === undefined) return def;
    const n = parseDuration(v);
    if (n === null || n <= 0) throw new UsageError(`--${name}: ${JSON.stringify(v)} is not a duration (e.g. 30s)\n${FLOOD_USAGE}`);
    return n;
  };
  const garbageN = int("garbage", values.garbage, 200, 1, 100_000);
  const k = int("sources", values.sources, 4, 1, 250);
  const durationMs = dur("duration", values.duration, 30_000);
  const idleMs = dur("idle", values.idle, durationMs);
  const size = int("size", values.size, 1024, 1, 100_000_000);
  const to = values.to ?? `normal@${BENCH_DOMAIN}`;
  if (!/^[^\s<>@]+@[^\s<>@]+$/.test(to)) throw new UsageError(`--to: ${JSON.stringify(to)} is not an address\n${FLOOD_USAGE}`);
  const sources = Array.from({ length: k }, (_, i) => `127.0.0.${i + 2}`);

  let server: Awaited<ReturnType<typeof startRingmta>> | null = null;
  let host = values.host ?? "127.0.0.1";
  let port: number;
  let pid: number | null = values.pid !== undefined ? int("pid", values.pid, 0, 1, 2 ** 31) : null;
  if (values.port !== undefined) {
    port = int("port", values.port, 0, 1, 65535);
  } else {
    // Room for the garbage connections under max_connections_per_ip; every other limit at its default.
    server = await startRingmta({ maxConnections: garbageN + 1000, maxConnectionsPerIp: garbageN + 1000 });
    host = "127.0.0.1";
    port = server.port;
    pid = server.pid;
  }
  try {
    const idleEnd = performance.now() + idleMs;
    const idle = await normalClient(host, port, size, to, () => performance.now() >= idleEnd, pid);
    const garbage = runGarbageChild(host, port, garbageN, sources, durationMs);
    const floodEnd = performance.now() + durationMs;
    const flood = await normalClient(host, port, size, to, () => performance.now() >= floodEnd, pid);
    const g = await garbage;
    const p50Ratio = idle.endOfData.p50 > 0 ? Math.round((flood.endOfData.p50 / idle.endOfData.p50) * 100) / 100 : 0;
    const r: FloodResult = {
      target: `${host}:${port}`,
      garbageConnections: garbageN,
      sources,
      idle,
      flood,
      p50Ratio,
      floodCpuPercent:
        idle.serverCpuPercent !== null && flood.serverCpuPercent !== null
          ? Math.round((flood.serverCpuPercent - idle.serverCpuPercent) * 10) / 10
          : null,
      garbage: g,
      ok: flood.failed === 0 && idle.failed === 0 && flood.transactions > 0 && p50Ratio <= 5,
    };
    console.log(values.json ? JSON.stringify(r) : formatFlood(r));
    return r.ok ? 0 : 1;
  } finally {
    if (server) {
      await server.stop();
      server.remove();
    }
  }
}
