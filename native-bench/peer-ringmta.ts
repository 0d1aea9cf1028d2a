/**
 * ringmta itself, the way an operator runs it (`bun src/main.ts serve --config FILE`), configured like the Postfix
 * peer: one plaintext listener on loopback, bench.test as a catch-all local domain, two delivery workers, no
 * metrics endpoint. Measured end to end: a message counts when it is a file in the Maildir.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_DOMAIN, type Peer, type RunningPeer } from "./peer.ts";
import { exited, freePorts, startChild, stopChild, waitForSmtp } from "./proc.ts";

export const REPO = fileURLToPath(new URL("../", import.meta.url));

/** A config file turns [checks] on; the bench compares like with like (Postfix checks nothing) unless `extra` says. */
const CHECKS_OFF = `[checks]
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
`;

export interface RingmtaConfig {
  port: number;
  dataDir: string;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /** More TOML appended as it is (e.g. [defence], [[rate_limits]] for `bench defence`). */
  extra?: string;
  /** A loopback port for the metrics endpoint; none by default. */
  metricsPort?: number;
}

export function ringmtaToml(c: RingmtaConfig): string {
  return `hostname = "ringmta.bench.localhost"
data_dir = ${JSON.stringify(c.dataDir)}
${/^\[checks\]/m.test(c.extra ?? "") ? "" : CHECKS_OFF}
[[listeners]]
name = "bench"
host = "127.0.0.1"
port = ${c.port}
tls = "none"
auth = "off"

[local]
domains = ["${BENCH_DOMAIN}"]
catch_all = true

[delivery]
workers = 2

[metrics]
listen = "${c.metricsPort !== undefined ? `127.0.0.1:${c.metricsPort}` : ""}"

[limits]
max_connections = ${c.maxConnections ?? 10000}
max_connections_per_ip = ${c.maxConnectionsPerIp ?? 1000}
${c.extra ?? ""}`;
}

/**
 * Starts ringmta in a new temp dir; `extra` overrides the connection limits (the idle test needs more). `repo`: run
 * the ringmta of another checkout (its src/main.ts, with its own node_modules), to compare two versions in one run.
 */
export async function startRingmta(
  limits: { maxConnections?: number; maxConnectionsPerIp?: number; extra?: string; metricsPort?: number; repo?: string } = {},
): Promise<RunningPeer & { dir: string; dataDir: string; output(): string }> {
  const dir = mkdtempSync(join(tmpdir(), "ringmta-bench-"));
  const dataDir = join(dir, "data");
  const [port] = await freePorts(1);
  const configPath = join(dir, "ringmta.toml");
  writeFileSync(configPath, ringmtaToml({ port: port!, dataDir, ...limits }));
  // RINGMTA_BENCH_BUN_ARGS: options for Bun itself, e.g. "--cpu-prof-md --cpu-prof-dir=/tmp/prof" to profile.
  const bunArgs = (process.env.RINGMTA_BENCH_BUN_ARGS ?? "").split(/\s+/).filter(Boolean);
  const c = startChild(process.execPath, [...bunArgs, join(limits.repo ?? REPO, "src", "main.ts"), "serve", "--config", configPath], { cwd: dir });
  try {
    await waitForSmtp(port!, 30_000, () => !exited(c.proc));
  } catch (e) {
    await stopChild(c, 1000);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`ringmta: ${(e as Error).message}\n${c.output()}`);
  }
  const mailbox = (local: string): string => join(dataDir, "mail", BENCH_DOMAIN, local);
  return {
    port: port!,
    command: c.command,
    pid: c.proc.pid!,
    dir,
    dataDir,
    output: c.output,
    maildir: mailbox,
    async stop() {
      await stopChild(c, 12_000);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function ringmtaPeer(): Peer {
  return {
    name: "ringmta",
    role: "durable, delivers to Maildir",
    missing: () => null,
    start: () => startRingmta(),
  };
}
