/**
 * Postfix's smtp-source as the second client: the same load (sessions, messages, size, sender, recipient), one
 * message after another per connection (`-d`), timed from spawn to exit. It adds about 140 octets of headers to
 * the `-l` payload, so the payload is the size minus that.
 */
import { spawn } from "node:child_process";
import { which } from "./proc.ts";

export const SMTP_SOURCE_HEADER_BYTES = 140;

export interface SourceRun {
  ok: boolean;
  elapsedMs: number;
  /** performance.now() at spawn, for the end-to-end clock. */
  t0: number;
  error: string | null;
}

export function smtpSourceArgs(o: { sessions: number; messages: number; size: number; from: string; to: string; port: number }): string[] {
  return [
    "-s", String(o.sessions),
    "-m", String(o.messages),
    "-l", String(Math.max(1, o.size - SMTP_SOURCE_HEADER_BYTES)),
    "-d",
    "-f", o.from,
    "-t", o.to,
    "-M", "bench.ringmta",
    `127.0.0.1:${o.port}`,
  ];
}

export function runSmtpSource(args: string[], timeoutMs: number): Promise<SourceRun> {
  const bin = which("smtp-source");
  if (!bin) return Promise.resolve({ ok: false, elapsedMs: 0, t0: performance.now(), error: "smtp-source not installed" });
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr!.on("data", (b: Buffer) => {
      if (err.length < 4000) err += b.toString("utf8");
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", (code, signal) => {
      clearTimeout(timer);
      const elapsedMs = performance.now() - t0;
      const ok = code === 0;
      resolve({ ok, elapsedMs, t0, error: ok ? null : `smtp-source exited ${code ?? signal}: ${err.trim().slice(0, 300)}` });
    });
  });
}
