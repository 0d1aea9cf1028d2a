/** The machine a result was measured on, for RESULTS.md. */
import { readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { runSync, which } from "./proc.ts";

export interface Machine {
  cpus: number;
  cpuModel: string;
  memory: string;
  kernel: string;
  bun: string;
  node: string;
  postfix: string;
  fdLimit: string;
}

function fdLimit(): string {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? `${m[1]} soft / ${m[2]} hard` : "unknown";
  } catch {
    return "unknown";
  }
}

export function describeMachine(): Machine {
  const node = which("node") ? runSync(which("node")!, ["--version"]).stdout.trim() : "not installed";
  const postconf = which("postconf");
  const postfix = postconf ? runSync(postconf, ["-d", "-h", "mail_version"]).stdout.trim() || "unknown" : "not installed";
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: release(),
    bun: Bun.version,
    node,
    postfix,
    fdLimit: fdLimit(),
  };
}

export function machineMarkdown(m: Machine): string {
  return [
    `- CPUs (nproc): ${m.cpus} × ${m.cpuModel}`,
    `- memory: ${m.memory}`,
    `- kernel: ${m.kernel}`,
    `- bun ${m.bun}, node ${m.node}, Postfix ${m.postfix}`,
    `- open files limit: ${m.fdLimit}`,
  ].join("\n");
}
