/**
 * Starts the real server (`bun src/main.ts serve --config DIR/ringmta.toml`) in a temp dir on free loopback
 * ports, waits until it answers, and tears it down. Every process and temp dir is removed when the test file ends.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "smol-toml";
import { afterAll, beforeAll } from "vitest";
import { canConnect, freePorts } from "./ports.ts";
import { SmtpClient } from "./smtp-client.ts";
import { sleep } from "./wait.ts";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const BUN = join(REPO, "node_modules", ".bin", "bun");
export const MAIN = join(REPO, "src", "main.ts");
export const HOSTNAME = "mx.test.ringmta";

export type TlsMode = "none" | "starttls" | "implicit";
export type AuthMode = "off" | "optional" | "required";
export interface ListenerOpt {
  name: string;
  tls: TlsMode;
  auth: AuthMode;
  /** PROXY protocol on this listener (proxy_protocol = true), with proxy_from when given. */
  proxy?: { from?: string[] };
}

export const DEFAULT_LISTENERS: ListenerOpt[] = [
  { name: "mx", tls: "starttls", auth: "optional" },
  { name: "submission", tls: "starttls", auth: "required" },
  { name: "submissions", tls: "implicit", auth: "required" },
];

export const USERS = { alice: "secret-alice", bob: "secret-bob" } as const;

export interface ServerOptions {
  /** Extra TOML, deep-merged over the base config (tables merge, arrays and scalars replace). */
  config?: string;
  listeners?: ListenerOpt[];
  env?: Record<string, string>;
  /** Ms to wait for the listeners; default 20 s. */
  readyTimeoutMs?: number;
}

export interface Srv {
  dir: string;
  dataDir: string;
  configPath: string;
  ports: { mx: number; submission: number; submissions: number; metrics: number } & Record<string, number>;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Everything the server wrote to stderr and stdout, over all its runs. */
  logs(): string;
  /** SIGTERM; resolves with the exit code (128+signal when killed by a signal). Escalates to SIGKILL after 15 s. */
  stop(): Promise<number>;
  kill9(): Promise<void>;
  /** Stops a running process (SIGTERM), then starts again on the same config and ports and waits until ready. */
  restart(): Promise<void>;
  /** VmRSS of the server process in KiB. */
  rssKiB(): number;
  /** VmHWM (peak RSS) of the server process in KiB. */
  hwmKiB(): number;
  /** Resets VmHWM to the current RSS (Linux clear_refs "5"); false where the kernel does not allow it. */
  resetHwm(): boolean;
  /** Stop (SIGKILL if needed) and remove the temp dir. Idempotent. */
  dispose(): Promise<void>;
}

type Toml = Record<string, unknown>;

function isTable(v: unknown): v is Toml {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

export function deepMerge(base: Toml, over: Toml): Toml {
  const out: Toml = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isTable(v) && isTable(out[k]) ? deepMerge(out[k] as Toml, v) : v;
  }
  return out;
}

let usersCache: string | null = null;

/**
 * The users file body, hashed with Bun.password.hash (what the server verifies). Hashing is slow, so it is done
 * once per run and cached in the temp dir (written via rename, so parallel workers never read half a file).
 */
export function usersFile(): string {
  if (usersCache !== null) return usersCache;
  const cache = join(tmpdir(), "ringmta-test-users.v1.txt");
  if (existsSync(cache)) {
    usersCache = readFileSync(cache, "utf8");
    return usersCache;
  }
  const script =
    "const u = JSON.parse(process.argv[1]); let out = '';" +
    "for (const [n, p] of Object.entries(u)) out += n + '@example.test:' + (await Bun.password.hash(p)) + '\\n';" +
    "process.stdout.write(out);";
  const r = spawnSync(BUN, ["-e", script, JSON.stringify(USERS)], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.includes("alice@example.test:")) {
    throw new Error(`hashing test passwords with bun failed: ${r.stderr || r.error?.message}`);
  }
  const tmp = `${cache}.${process.pid}`;
  writeFileSync(tmp, r.stdout);
  renameSync(tmp, cache);
  usersCache = r.stdout;
  return usersCache;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

/** Last resort when a test file dies without its afterAll: no orphaned servers, no temp dirs left behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const p of live) p.kill("SIGKILL");
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

function exitCode(p: ChildProcess): number | null {
  if (p.exitCode !== null) return p.exitCode;
  if (p.signalCode !== null) return 128 + (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 }) as Record<string, number>)[p.signalCode]!;
  return null;
}

function waitExit(p: ChildProcess, timeoutMs: number): Promise<number | null> {
  const now = exitCode(p);
  if (now !== null) return Promise.resolve(now);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), timeoutMs);
    p.once("exit", () => {
      clearTimeout(t);
      resolve(exitCode(p));
    });
  });
}

function procStatus(pid: number, field: string): number {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(s);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

export interface Spawned {
  proc: ChildProcess;
  logs: () => string;
}

/** Spawns `bun src/main.ts ...args` in cwd, collecting stdout and stderr. */
export function spawnRingmta(args: string[], cwd: string, env: Record<string, string> = {}): Spawned {
  installExitHook();
  const proc = spawn(BUN, [MAIN, ...args], { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  const out: Buffer[] = [];
  proc.stdout!.on("data", (b: Buffer) => out.push(b));
  proc.stderr!.on("data", (b: Buffer) => out.push(b));
  return { proc, logs: () => Buffer.concat(out).toString("utf8") };
}

/** Waits until a 220 greeting arrives on port (the server is up and its session layer answers). */
export async function waitFor220(port: number, proc: ChildProcess, logs: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (exitCode(proc) !== null) throw new Error(`server exited with ${exitCode(proc)} before answering:\n${logs()}`);
    try {
      const c = await SmtpClient.connect(port, { timeoutMs: 1000 });
      try {
        const r = await c.readReply(3000);
        if (r.code === 220) {
          await c.send("QUIT\r\n").catch(() => undefined);
          return;
        }
        last = r.raw;
      } finally {
        c.destroy();
      }
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`no 220 on port ${port} within ${timeoutMs} ms (last: ${last}); server output:\n${logs()}`);
}

export async function startServer(opts: ServerOptions = {}): Promise<Srv> {
  const listeners = opts.listeners ?? DEFAULT_LISTENERS;
  const ports = { mx: 0, submission: 0, submissions: 0, metrics: 0 } as Srv["ports"];

  const dir = mkdtempSync(join(tmpdir(), "ringmta-test-"));
  dirs.add(dir);
  const configPath = join(dir, "ringmta.toml");
  writeFileSync(join(dir, "users.txt"), usersFile());
  let config: Toml = {};
  /**
   * Free ports for the listeners and the metrics endpoint, and the config naming them. Between freePorts and the
   * server's bind, a port can be taken as the local port of an outgoing connection (two test workers connect all the
   * time); a server that lost a port that way is started again on new ones (below).
   */
  const configure = async (): Promise<void> => {
    const got = await freePorts(listeners.length + 1);
    ports.metrics = got[listeners.length]!;
    listeners.forEach((l, i) => (ports[l.name] = got[i]!));
    config = {
      hostname: HOSTNAME,
      data_dir: "data",
      tls: { cert: "server.crt", key: "server.key" },
      listeners: listeners.map((l) => ({
        name: l.name,
        host: "127.0.0.1",
        port: ports[l.name],
        tls: l.tls,
        auth: l.auth,
        ...(l.proxy ? { proxy_protocol: true, ...(l.proxy.from ? { proxy_from: l.proxy.from } : {}) } : {}),
      })),
      local: {
        domains: ["example.test"],
        users_file: "users.txt",
        catch_all: false,
        aliases: {
          "postmaster@example.test": ["alice@example.test"],
          "team@example.test": ["alice@example.test", "bob@example.test"],
        },
      },
      delivery: { workers: 2 },
      limits: { max_recipients: 5, max_message_size: 200000 },
      metrics: { listen: `127.0.0.1:${ports.metrics}` },
      // A config file turns [checks] on (CONTRACT defaults); the test server does no DNS unless a test asks for it.
      checks: { spf: "off", dkim: "off", arc: "off", dmarc: "off" },
    };
    if (opts.config) config = deepMerge(config, parse(opts.config) as Toml);
    writeFileSync(configPath, stringify(config) + "\n");
  };
  await configure();

  const readyTimeout = opts.readyTimeoutMs ?? 20_000;
  let cur: Spawned;
  let all = "";
  const logs = (): string => all + cur.logs();

  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + readyTimeout;
    // A PROXY listener sends no banner without a header: only the plain mx listener is asked for its 220.
    const mx = listeners.find((l) => l.name === "mx" && !l.proxy);
    if (mx) await waitFor220(ports.mx, cur.proc, logs, readyTimeout);
    const metricsOn = (config.metrics as Toml | undefined)?.listen !== "";
    const others = [...listeners.filter((l) => l !== mx).map((l) => ports[l.name]), ...(metricsOn ? [ports.metrics] : [])];
    for (const port of others) {
      while (!(await canConnect(port))) {
        if (exitCode(cur.proc) !== null) throw new Error(`server exited with ${exitCode(cur.proc)}:\n${logs()}`);
        if (Date.now() > deadline) throw new Error(`port ${port} not accepting within ${readyTimeout} ms; server output:\n${logs()}`);
        await sleep(100);
      }
    }
  };

  const launch = async (): Promise<void> => {
    cur = spawnRingmta(["serve", "--config", configPath], REPO, opts.env);
    try {
      await waitReady();
    } catch (err) {
      cur.proc.kill("SIGKILL");
      throw err;
    }
  };

  const stop = async (): Promise<number> => {
    const p = cur.proc;
    if (exitCode(p) === null) p.kill("SIGTERM");
    let code = await waitExit(p, 15_000);
    if (code === null) {
      p.kill("SIGKILL");
      code = await waitExit(p, 5_000);
    }
    return code ?? -1;
  };

  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      // Only a bind lost to the race above is retried; any other failure is the test's to see.
      if (attempt >= 3 || !/Failed to listen|EADDRINUSE/.test(logs())) throw err;
      all += `${cur!.logs()}(attempt ${attempt} lost a port; again on new ports)\n`;
      await configure();
    }
  }
  let disposed = false;
  const srv: Srv = {
    dir,
    dataDir: join(dir, "data"),
    configPath,
    ports,
    get pid() {
      return cur.proc.pid!;
    },
    get proc() {
      return cur.proc;
    },
    logs,
    stop,
    async kill9() {
      cur.proc.kill("SIGKILL");
      await waitExit(cur.proc, 10_000);
    },
    async restart() {
      if (exitCode(cur.proc) === null) await stop();
      all += cur.logs();
      await launch();
    },
    rssKiB: () => procStatus(cur.proc.pid!, "VmRSS"),
    hwmKiB: () => procStatus(cur.proc.pid!, "VmHWM"),
    resetHwm() {
      try {
        writeFileSync(`/proc/${cur.proc.pid}/clear_refs`, "5");
        return true;
      } catch {
        return false;
      }
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      if (exitCode(cur.proc) === null) {
        cur.proc.kill("SIGKILL");
        await waitExit(cur.proc, 10_000);
      }
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
  return srv;
}

/**
 * Registers beforeAll/afterAll in the calling suite: one server for the file (or describe block), always disposed.
 * Returns a getter (the server exists only once beforeAll has run).
 */
export function useServer(opts: ServerOptions = {}): () => Srv {
  let srv: Srv | null = null;
  beforeAll(async () => {
    srv = await startServer(opts);
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
  }, 30_000);
  return () => {
    if (!srv) throw new Error("server not started (beforeAll failed?)");
    return srv;
  };
}

/** A temp dir removed when the process exits (for tests that run the server their own way). */
export function tempDir(prefix = "ringmta-test-"): string {
  installExitHook();
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

/**
 * Removes every temp dir made by tempDir() or a spawned server in this test file (test/setup-temp-dirs.ts calls it
 * after each file): the exit hook alone is not enough, as a test worker that runs several files may never exit.
 */
export function removeTempDirs(): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}
