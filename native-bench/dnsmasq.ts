/** dnsmasq on a loopback port, authoritative for the bench's zones: the DNS of `bench defence` and `bench checks`. */
import { spawn } from "node:child_process";
import { freePorts, which } from "./proc.ts";

export interface BenchDns {
  /** "127.0.0.1:PORT", for [dns] servers. */
  server: string;
  stop(): void;
}

/** A foreground dnsmasq on 127.0.0.1:port that reads no system file and answers `zones` itself, nothing else. */
export function dnsmasqArgs(port: number, zones: string[], records: string[]): string[] {
  return [
    "--no-daemon",
    `--port=${port}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--no-resolv",
    "--no-hosts",
    "--conf-file=/dev/null",
    "--user=root",
    ...zones.map((z) => `--local=/${z}/`),
    ...records,
  ];
}

/** `records`: dnsmasq options such as "--host-record=…" or "--txt-record=…"; `zones` answered locally only. */
export async function startBenchDns(zones: string[], records: string[]): Promise<BenchDns> {
  const bin = which("dnsmasq") ?? (["/usr/sbin/dnsmasq", "/sbin/dnsmasq"].find((p) => Bun.file(p).size > 0) ?? null);
  if (bin === null) throw new Error("dnsmasq not found: install with: apt-get install -y dnsmasq-base");
  const [port] = await freePorts(1);
  const args = dnsmasqArgs(port!, zones, records);
  const p = spawn(bin, args, { stdio: "ignore" });
  process.once("exit", () => p.kill("SIGKILL"));
  await Bun.sleep(300);
  if (p.exitCode !== null) throw new Error(`dnsmasq exited: ${bin} ${args.join(" ")}`);
  return { server: `127.0.0.1:${port}`, stop: () => void p.kill("SIGTERM") };
}
