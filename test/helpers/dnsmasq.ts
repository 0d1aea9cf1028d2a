/**
 * A real DNS server for DNS and MX tests: dnsmasq on a loopback port, authoritative (--local) for the test zones,
 * with the given --mx-host / --host-record / --txt-record / --cname lines (and any raw option in `extra`). Stopped by stop(); the process dies with the test process too.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Resolver } from "node:dns/promises";
import { dnsmasqArgs } from "../../native-bench/dnsmasq.ts";
import { freePorts } from "./ports.ts";
import { peerPath } from "./peers.ts";
import { sleep } from "./wait.ts";

export interface Dnsmasq {
  port: number;
  /** "127.0.0.1:PORT", for dns.servers. */
  server: string;
  stop(): Promise<void>;
}

export interface DnsmasqOptions {
  zones: string[];
  /** --mx-host values: "name,host,preference". */
  mx?: string[];
  /** --host-record values: "name,address[,address…]". */
  hosts?: string[];
  /**
   * --txt-record values: "name,string1,string2" — each string one character-string of ONE record (on the command
   * line dnsmasq splits at commas and keeps quotes literally, so strings can hold neither).
   */
  txt?: string[];
  /** --cname values: "alias,target". */
  cnames?: string[];
  /** Other dnsmasq options, passed as they are (e.g. "--local-ttl=60"). */
  extra?: string[];
}

export async function startDnsmasq(opts: DnsmasqOptions): Promise<Dnsmasq> {
  const bin = peerPath("dnsmasq");
  if (bin === null) throw new Error("dnsmasq not installed");
  const [port] = await freePorts(1);
  const args = dnsmasqArgs(port!, opts.zones, [
    ...(opts.mx ?? []).map((m) => `--mx-host=${m}`),
    ...(opts.hosts ?? []).map((h) => `--host-record=${h}`),
    ...(opts.txt ?? []).map((t) => `--txt-record=${t}`),
    ...(opts.cnames ?? []).map((c) => `--cname=${c}`),
    ...(opts.extra ?? []),
  ]);
  const proc: ChildProcess = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  process.once("exit", () => proc.kill("SIGKILL"));
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`dnsmasq exited: ${err}`);
    try {
      await r.resolve4(`probe.${opts.zones[0]}`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOTFOUND" || (e as NodeJS.ErrnoException).code === "ENODATA") break;
      if (i > 50) throw new Error(`dnsmasq on ${port} does not answer: ${String(e)} ${err}`);
      await sleep(100);
    }
  }
  return {
    port,
    server: `127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      await new Promise((res) => proc.once("exit", res));
    },
  };
}
