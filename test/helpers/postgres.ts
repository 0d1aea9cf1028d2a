/**
 * A real PostgreSQL for one test file (Debian postgresql 15): initdb into a temp dir under /tmp, pg_ctl start
 * with its unix socket in that dir and TCP on a free loopback port, a role `ringmta` and a database `mail` it
 * owns; trust authentication (loopback only, throw-away cluster). PostgreSQL refuses to run as root, so as root
 * every program runs through `runuser -u postgres`. fsync is off: a test cluster needs no durability.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { peerPath } from "./peers.ts";
import { freePorts } from "./ports.ts";

export interface Postgres {
  dir: string;
  port: number;
  /** postgres://ringmta@127.0.0.1:PORT/mail */
  url: string;
  /** The server's log so far. */
  log(): string;
  stop(): void;
  start(): void;
  /** SIGSTOP (true) or SIGCONT (false) to the server and all its processes: a database that hangs. */
  freeze(on: boolean): void;
  /** Stop and remove the cluster. Idempotent. */
  dispose(): void;
}

function idOf(user: string, flag: "-u" | "-g"): number {
  const r = spawnSync("id", [flag, user], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`id ${flag} ${user}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

export async function startPostgres(): Promise<Postgres> {
  const initdb = peerPath("initdb");
  if (initdb === null) throw new Error("initdb not found: apt-get install -y postgresql");
  // The server programs sit together in /usr/lib/postgresql/<major>/bin (initdb may be a symlink to there).
  const bin = (p: string): string => join(realpathSync(initdb), "..", p);
  const root = process.getuid?.() === 0;
  // A short path: the socket name (DIR/.s.PGSQL.PORT) must fit in 107 bytes.
  const dir = mkdtempSync("/tmp/rmta-pg-");
  if (root) {
    chownSync(dir, idOf("postgres", "-u"), idOf("postgres", "-g"));
  }
  chmodSync(dir, 0o755);
  const data = join(dir, "data");
  const logPath = join(dir, "server.log");
  const [port] = await freePorts(1);
  const run = (prog: string, args: string[]): void => {
    const cmd = root ? ["runuser", "-u", "postgres", "--", bin(prog), ...args] : [bin(prog), ...args];
    const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", cwd: dir, timeout: 60_000 });
    if (r.status !== 0) {
      let log = "";
      try {
        log = readFileSync(logPath, "utf8");
      } catch {
        // no log yet
      }
      throw new Error(`${prog} ${args.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}\n${log}`);
    }
  };
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  let running = false;
  const pg: Postgres = {
    dir,
    port: port!,
    url: `postgres://ringmta@127.0.0.1:${port}/mail`,
    log: () => {
      try {
        return readFileSync(logPath, "utf8");
      } catch {
        return "";
      }
    },
    start() {
      run("pg_ctl", ["-D", data, "-l", logPath, "-w", "-t", "30", "-o", `-k ${dir} -p ${port} -h 127.0.0.1 -c fsync=off`, "start"]);
      running = true;
    },
    stop() {
      if (!running) return;
      run("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
      running = false;
    },
    freeze(on: boolean) {
      const main = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      const children = spawnSync("pgrep", ["-P", String(main)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
      for (const pid of [main, ...children]) process.kill(pid, on ? "SIGSTOP" : "SIGCONT");
    },
    dispose() {
      try {
        pg.freeze(false);
      } catch {
        // not running
      }
      try {
        pg.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    pg.start();
    run("createuser", ["-h", dir, "-p", String(port), "-U", "postgres", "ringmta"]);
    run("createdb", ["-h", dir, "-p", String(port), "-U", "postgres", "-O", "ringmta", "mail"]);
  } catch (e) {
    pg.dispose();
    throw e;
  }
  return pg;
}
