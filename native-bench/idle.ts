/**
 * `bun run bench -- idle --connections 10000`: opens N connections, completes EHLO on each, holds them, and reports
 * the server's RSS per connection (VmRSS from /proc/<pid>/status before and after). Starts ringmta itself unless
 * --port and --pid name a running server.
 *
 * File descriptors: this process needs one per connection plus a few hundred, and so does the server. When the
 * soft RLIMIT_NOFILE is too low, the command re-executes itself under `ulimit -n` (possible up to the hard limit,
 * or beyond as root); the ringmta it starts inherits the raised limit. Source addresses: with a short ephemeral
 * port range (net.ipv4.ip_local_port_range) the connections are spread over 127.0.0.2, 127.0.0.3, ….
 */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { UsageError } from "./args.ts";
import { startRingmta } from "./peer-ringmta.ts";
import type { RunningPeer } from "./peer.ts";
import { writeSection } from "./results-file.ts";
import { describeMachine, machineMarkdown } from "./machine.ts";
import { formatCount } from "./units.ts";

/** Descriptors beyond the connections: the runtime, pipes, the server's spool and workers. */
const FD_HEADROOM = 512;
/** Connections in the handshake at once (the listen backlog is 1024). */
const CONCURRENT_OPENS = 400;
const REEXEC_ENV = "RINGMTA_BENCH_IDLE_REEXEC";

export interface IdleResult {
  connections: number;
  established: number;
  failed: number;
  firstError: string | null;
  sourceAddresses: string[];
  fdLimitNeeded: number;
  fdLimit: number;
  pid: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  rssPerConnectionKiB: number;
  openMs: number;
}

function softNofile(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const n = (s: string | undefined): number => (s === undefined || s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

function ephemeralPorts(): number {
  try {
    const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    return hi! - lo! + 1;
  } catch {
    return 28_000;
  }
}

/** One connection: wait for the 220, send EHLO, wait for the last line of the 250 reply; then hold it. */
function openOne(host: string, port: number, localAddress: string | undefined, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    let buf = "";
    let stage = 0;
    const fail = (why: string): void => {
      clearTimeout(t);
      s.destroy();
      reject(new Error(why));
    };
    const t = setTimeout(() => fail("timeout before EHLO completed"), timeoutMs);
    s.on("data", (b: Buffer) => {
      if (stage === 2) return;
      buf += b.toString("latin1");
      for (;;) {
        const nl = buf.indexOf("\n");
        if (nl === -1) return;
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (line[3] === "-") continue;
        if (stage === 0) {
          if (!line.startsWith("220")) return fail(`banner: ${line}`);
          stage = 1;
          s.write("EHLO idle.bench.ringmta\r\n");
        } else {
          if (!line.startsWith("250")) return fail(`EHLO: ${line}`);
          stage = 2;
          clearTimeout(t);
          s.removeAllListeners("error");
          s.on("error", () => {});
          resolve(s);
          return;
        }
      }
    });
    s.once("error", (e) => fail(e.message));
    s.once("close", () => {
      if (stage < 2) fail("closed by the server");
    });
  });
}

export async function runIdle(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        connections: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        pid: { type: "string" },
        "source-addrs": { type: "string" },
        json: { type: "boolean" },
        "no-write": { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const n = Number(values.connections ?? "10000");
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new UsageError("--connections: expected a positive integer");
  if ((values.port === undefined) !== (values.pid === undefined)) throw new UsageError("--port and --pid go together");

  const needed = n + FD_HEADROOM;
  const lim = softNofile();
  if (lim.soft < needed) {
    if (process.env[REEXEC_ENV] === "1" || (lim.hard < needed && process.getuid?.() !== 0)) {
      throw new Error(`needs ${needed} open files; run \`ulimit -n ${needed}\` in this shell first (soft limit is ${lim.soft}, hard ${lim.hard})`);
    }
    console.error(`bench: raising the open files limit to ${needed} (ulimit -n ${needed}) and re-running`);
    const { spawnSync } = await import("node:child_process");
    const hint = `bench: idle needs ${needed} open files per process; raise the hard limit first (as root: ulimit -Hn ${needed})`;
    const r = spawnSync(
      "/bin/sh",
      ["-c", `ulimit -n ${needed} 2>/dev/null || { echo "${hint}" >&2; exit 2; }; exec "$0" "$@"`, process.execPath, ...process.argv.slice(1)],
      { stdio: "inherit", env: { ...process.env, [REEXEC_ENV]: "1" } },
    );
    return r.status ?? 1;
  }

  const groups = values["source-addrs"] !== undefined ? Number(values["source-addrs"]) : Math.ceil(n / Math.max(1000, ephemeralPorts() - 2000));
  if (!Number.isInteger(groups) || groups < 1 || groups > 250) throw new UsageError("--source-addrs: expected 1 to 250");
  const sources = groups === 1 ? [] : Array.from({ length: groups }, (_, i) => `127.0.0.${i + 2}`);

  let server: (RunningPeer & { dir: string }) | null = null;
  let host = values.host ?? "127.0.0.1";
  let port: number;
  let pid: number;
  if (values.port !== undefined) {
    port = Number(values.port);
    pid = Number(values.pid);
  } else {
    host = "127.0.0.1";
    server = await startRingmta({ maxConnections: n + 100, maxConnectionsPerIp: n + 100 });
    port = server.port;
    pid = server.pid;
    await Bun.sleep(1000);
  }

  const socks: Socket[] = [];
  let failed = 0;
  let firstError: string | null = null;
  let rssBefore = 0;
  let rssAfter = 0;
  let openMs = 0;
  try {
    rssBefore = rssKiB(pid);
    const t0 = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        const i = next++;
        const src = sources.length ? sources[i % sources.length] : undefined;
        try {
          socks.push(await openOne(host, port, src, 30_000));
        } catch (e) {
          failed++;
          firstError ??= (e as Error).message;
        }
      }
    };
    const progress = process.stderr.isTTY
      ? setInterval(() => process.stderr.write(`\ropen ${formatCount(socks.length)} / ${formatCount(n)}, failed ${failed}   `), 250)
      : null;
    await Promise.all(Array.from({ length: Math.min(CONCURRENT_OPENS, n) }, worker));
    if (progress) {
      clearInterval(progress);
      process.stderr.write("\n");
    }
    openMs = performance.now() - t0;
    // Let the server finish what the last handshakes started before sampling.
    await Bun.sleep(2000);
    rssAfter = rssKiB(pid);
  } finally {
    for (const s of socks) s.destroy();
    await server?.stop();
    server?.remove();
  }

  const r: IdleResult = {
    connections: n,
    established: socks.length,
    failed,
    firstError,
    sourceAddresses: sources.length ? sources : ["127.0.0.1 (kernel's choice)"],
    fdLimitNeeded: needed,
    fdLimit: softNofile().soft,
    pid,
    rssBeforeKiB: rssBefore,
    rssAfterKiB: rssAfter,
    rssPerConnectionKiB: socks.length ? Math.round(((rssAfter - rssBefore) / socks.length) * 100) / 100 : 0,
    openMs: Math.round(openMs),
  };
  const text = [
    `idle: ${formatCount(r.established)} of ${formatCount(n)} connections held after EHLO (${r.failed} failed${r.firstError ? `; first: ${r.firstError}` : ""}) in ${(r.openMs / 1000).toFixed(1)} s`,
    `server pid ${pid} RSS: ${formatCount(rssBefore)} KiB before, ${formatCount(rssAfter)} KiB after: ` +
      `${r.rssPerConnectionKiB} KiB per connection (target ≤ 4 KiB)`,
    `open files needed: ${needed} per process (\`ulimit -n ${needed}\`); source addresses: ${r.sourceAddresses.join(", ")}`,
  ].join("\n");
  console.log(values.json ? JSON.stringify(r) : text);
  if (server && values["no-write"] !== true && r.failed === 0) {
    writeSection(
      "idle",
      `## Idle connections (\`bun run bench -- idle --connections ${n}\`)

Run ${new Date().toISOString()}.

${machineMarkdown(describeMachine())}

${text.split("\n").map((l) => `- ${l}`).join("\n")}

The command raises its own open-files limit to ${needed} (\`ulimit -n ${needed}\`; more than the hard limit needs
root) and the ringmta it starts inherits it; ringmta runs with \`[limits] max_connections = ${n + 100}\` and
\`max_connections_per_ip = ${n + 100}\`. RSS is VmRSS of the server process 2 s after the last EHLO.
`,
    );
  }
  return r.failed === 0 ? 0 : 1;
}
