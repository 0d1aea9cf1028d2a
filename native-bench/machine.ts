/** The machine a result was measured on, for RESULTS.md. */
import { accessSync, constants, readFileSync, realpathSync } from "node:fs";
import { basename, delimiter, join } from "node:path";
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

/** Node's version: the first `node` on PATH that is not the shim `bun run` puts first (a link to bun itself). */
function nodeVersion(): string {
  for (const d of (process.env.PATH ?? "").split(delimiter)) {
    if (!d) continue;
    const p = join(d, "node");
    try {
      accessSync(p, constants.X_OK);
      if (basename(realpathSync(p)).startsWith("bun")) continue;
    } catch {
      continue;
    }
    return runSync(p, ["--version"]).stdout.trim() || "unknown";
  }
  return "not installed";
}

export function describeMachine(): Machine {
  const node = nodeVersion();
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
