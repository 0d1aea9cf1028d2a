/** Child processes and ports for the peers: spawn with collected output, wait for a port, stop by pid. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { delimiter, join } from "node:path";

export interface Child {
  proc: ChildProcess;
  /** The exact command line it was started with (words with spaces or quotes single-quoted, as a shell takes it). */
  command: string;
  /** stdout and stderr so far (the last 64 KiB). */
  output(): string;
}

const started = new Set<ChildProcess>();
let hookInstalled = false;

/** A bench that dies must not leave peers behind: every child still running at exit gets SIGKILL. */
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.once("exit", () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  });
}

export function startChild(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Child {
  installExitHook();
  const proc = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.add(proc);
  proc.once("exit", () => started.delete(proc));
  let out = "";
  const keep = (b: Buffer): void => {
    out += b.toString("utf8");
    if (out.length > 65536) out = out.slice(-65536);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  proc.on("error", (e) => keep(Buffer.from(`spawn error: ${e.message}\n`)));
  return { proc, command: commandLine(cmd, args), output: () => out };
}

/** `cmd args…` as a shell would take it back. */
export function commandLine(cmd: string, args: string[]): string {
  return [cmd, ...args].map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`)).join(" ");
}

export function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopChild(c: Child, graceMs = 5000): Promise<void> {
  const p = c.proc;
  if (exited(p)) return;
  const gone = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(t);
}

/** Runs a command to completion; never throws (the status says what happened). */
export function runSync(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
    env: { ...process.env, ...opts.env },
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error.message) : "") };
}

/** Absolute path of a program, looking in PATH and the sbin directories Postfix installs into. */
export function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin"];
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, name), constants.X_OK);
      return join(d, name);
    } catch {
      // not here
    }
  }
  return null;
}

/** `n` distinct free loopback ports (held together while asked for, so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => resolve());
      });
      const a = s.address();
      if (a === null || typeof a === "string") throw new Error("no port from listen(0)");
      ports.push(a.port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
  return ports;
}

/** Resolves once something on port answers with a line starting "220" (an SMTP greeting); bounded by timeoutMs. */
export async function waitForSmtp(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process exited before port ${port} answered`);
    const got = await new Promise<string>((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      let buf = "";
      const done = (v: string): void => {
        clearTimeout(t);
        s.destroy();
        resolve(v);
      };
      const t = setTimeout(() => done(buf || "timeout"), 2000);
      s.on("data", (b: Buffer) => {
        buf += b.toString("latin1");
        if (buf.includes("\n")) {
          s.write("QUIT\r\n");
          done(buf);
        }
      });
      s.once("error", (e) => done(e.message));
    });
    if (got.startsWith("220")) return;
    last = got.trim();
    await Bun.sleep(100);
  }
  throw new Error(`no SMTP greeting on port ${port} within ${timeoutMs} ms (last: ${last})`);
}

/** utime + stime in seconds from a proc(5) stat line (a process's or one thread's). */
function statCpuSeconds(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5), counted from the state (field 3) here; in clock ticks of 100 Hz (USER_HZ).
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** utime + stime of a process (all its threads) in seconds, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, "utf8"));
}

/**
 * utime + stime of each of a process's threads in seconds, summed by thread name ("main" for the main thread),
 * from /proc/<pid>/task (Linux). Threads that ended since are not counted: take it around a span in which the
 * process's threads live on (a server's workers and helper threads do).
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended between the listing and the read
    }
    const name = tid === String(pid) ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    out.set(name, (out.get(name) ?? 0) + statCpuSeconds(stat));
  }
  return out;
}
