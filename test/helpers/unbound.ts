/**
 * A validating resolver for a DNSSEC-signed zone, all on loopback and made at test time: ldns-keygen makes a KSK and
 * a ZSK (ECDSA P-256, RFC 6605), ldns-signzone signs the zone (NSEC, RFC 4034), and one unbound serves it from an
 * `auth-zone:` (for-upstream, so its answers pass through the validator like any upstream's) with the KSK's DS as
 * its trust anchor. Answers from the signed zone come back with AD=1, answers from unsigned zones (outside every
 * trust anchor) with AD=0, and a record altered after signing is bogus (SERVFAIL).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Resolver } from "../../src/dns/index.ts";
import { peerPath } from "./peers.ts";
import { freePorts } from "./ports.ts";
import { sleep } from "./wait.ts";

export interface Unbound {
  port: number;
  /** "127.0.0.1:PORT", for dns.servers. */
  server: string;
  stop(): Promise<void>;
}

export interface UnboundZones {
  /** Zone name (no trailing dot) → zone-file lines relative to it ($ORIGIN is set; SOA and NS are added). */
  signed: Record<string, string[]>;
  unsigned?: Record<string, string[]>;
  /** Applied to each signed zone file's text after signing: alter a record here to make it bogus. */
  tamper?: (signedText: string) => string;
}

function zoneText(zone: string, lines: string[]): string {
  return [
    `$ORIGIN ${zone}.`,
    "$TTL 300",
    `@ IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 300`,
    `@ IN NS ns.${zone}.`,
    "ns IN A 127.0.0.1",
    ...lines,
    "",
  ].join("\n");
}

function run(bin: string, args: string[], cwd: string): string {
  const r = spawnSync(bin, args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.trim();
}

export async function startValidatingUnbound(zones: UnboundZones): Promise<Unbound> {
  const unbound = peerPath("unbound");
  const keygen = peerPath("ldns-keygen");
  const signzone = peerPath("ldns-signzone");
  if (unbound === null || keygen === null || signzone === null) throw new Error("unbound or ldnsutils not installed");
  const dir = mkdtempSync(join(tmpdir(), "ringmta-unbound-"));
  const [port] = await freePorts(1);
  const conf: string[] = [
    "server:",
    "  interface: 127.0.0.1",
    `  port: ${port}`,
    "  do-daemonize: no",
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    '  pidfile: ""',
    "  use-syslog: no",
    '  logfile: ""',
    "  verbosity: 0",
    "  access-control: 127.0.0.0/8 allow",
    "  do-not-query-localhost: no",
    '  module-config: "validator iterator"',
    // .test is one of unbound's built-in empty zones (RFC 6761 §6.2); let our auth-zones answer under it.
    '  local-zone: "test." nodefault',
    "  val-log-level: 2",
  ];
  const auth: string[] = [];
  for (const [zone, lines] of Object.entries(zones.signed)) {
    const file = join(dir, `${zone}.zone`);
    writeFileSync(file, zoneText(zone, lines));
    const ksk = run(keygen, ["-a", "ECDSAP256SHA256", "-k", zone], dir);
    const zsk = run(keygen, ["-a", "ECDSAP256SHA256", zone], dir);
    run(signzone, ["-n", file, ksk, zsk], dir);
    const signed = `${file}.signed`;
    if (zones.tamper) writeFileSync(signed, zones.tamper(readFileSync(signed, "utf8")));
    const ds = readFileSync(join(dir, `${ksk}.ds`), "utf8").trim().replace(/\s+/g, " ");
    conf.push(`  trust-anchor: "${ds}"`);
    auth.push("auth-zone:", `  name: "${zone}."`, `  zonefile: "${signed}"`, "  for-downstream: no", "  for-upstream: yes", "  fallback-enabled: no");
  }
  for (const [zone, lines] of Object.entries(zones.unsigned ?? {})) {
    const file = join(dir, `${zone}.zone`);
    writeFileSync(file, zoneText(zone, lines));
    auth.push("auth-zone:", `  name: "${zone}."`, `  zonefile: "${file}"`, "  for-downstream: no", "  for-upstream: yes", "  fallback-enabled: no");
  }
  const confFile = join(dir, "unbound.conf");
  writeFileSync(confFile, [...conf, ...auth, ""].join("\n"));
  const proc: ChildProcess = spawn(unbound, ["-d", "-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  process.once("exit", () => proc.kill("SIGKILL"));
  const probe = new Resolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 300, attempts: 1, cacheEntries: 0 });
  const first = Object.keys(zones.signed)[0];
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`unbound exited: ${err}`);
    const r = await probe.lookup(`ns.${first}`, "A");
    if (r.status !== "timeout") break;
    if (i > 50) throw new Error(`unbound on ${port} does not answer: ${err}`);
    await sleep(100);
  }
  return {
    port,
    server: `127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((res) => proc.once("exit", res));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
