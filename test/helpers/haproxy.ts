/**
 * A real HAProxy (the sender of PROXY headers in production) in front of a test server: one TCP frontend per
 * entry on a free loopback port, each forwarding to a backend port with `send-proxy` (v1) or `send-proxy-v2`.
 * TLS is passed through untouched (mode tcp). Runs in the foreground (-db) from a temp dir; stop() kills it, and
 * it dies with the test process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { peerPath } from "./peers.ts";
import { canConnect, freePorts } from "./ports.ts";
import { removeDir, tempDir } from "./server.ts";
import { sleep } from "./wait.ts";

export interface HaproxyRoute {
  /**
   * Backend port (ringmta's listener on 127.0.0.1); several: `balance roundrobin` over them, each health-checked
   * (a plain TCP connect, every 300 ms), with a failed connect redispatched to another server (a fleet).
   */
  to: number | number[];
  proxy: "v1" | "v2";
}

export interface Haproxy {
  /** Frontend ports, in the order of the routes. */
  ports: number[];
  logs(): string;
  stop(): Promise<void>;
}

export async function startHaproxy(routes: HaproxyRoute[]): Promise<Haproxy> {
  const bin = peerPath("haproxy");
  if (bin === null) throw new Error("haproxy not installed");
  const ports = await freePorts(routes.length);
  const dir = tempDir("ringmta-haproxy-");
  const cfg = [
    "global",
    "  maxconn 1000",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    ...routes.flatMap((r, i) => {
      const send = r.proxy === "v1" ? "send-proxy" : "send-proxy-v2";
      const head = [`frontend f${i}`, `  bind 127.0.0.1:${ports[i]}`, `  default_backend b${i}`, `backend b${i}`];
      if (!Array.isArray(r.to)) return [...head, `  server s${i} 127.0.0.1:${r.to} ${send}`];
      return [
        ...head,
        "  balance roundrobin",
        "  option redispatch",
        "  retries 3",
        ...r.to.map((port, j) => `  server s${i}_${j} 127.0.0.1:${port} ${send} check inter 300ms fall 1 rise 2`),
      ];
    }),
  ].join("\n");
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, cfg + "\n");
  const proc: ChildProcess = spawn(bin, ["-db", "-f", file], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  proc.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const kill = (): void => {
    proc.kill("SIGKILL");
  };
  process.once("exit", kill);
  const deadline = Date.now() + 10_000;
  for (const port of ports) {
    while (!(await canConnect(port))) {
      if (proc.exitCode !== null) throw new Error(`haproxy exited with ${proc.exitCode}:\n${out}`);
      if (Date.now() > deadline) {
        kill();
        throw new Error(`haproxy not listening on ${port} within 10 s:\n${out}`);
      }
      await sleep(50);
    }
  }
  return {
    ports,
    logs: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once("exit", r));
        kill();
        await gone;
      }
      process.removeListener("exit", kill);
      removeDir(dir);
    },
  };
}
