/**
 * Two ringmta servers under the same load in alternating repetitions of one run (`bench defence`, `bench checks`):
 * 1 KiB × 20 sessions, end to end (a message counts when it is a Maildir file), every message accepted or the run
 * fails. Alternating which goes first keeps either from always meeting a warmer (or busier) machine.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./args.ts";
import { runLoad } from "./load.ts";
import { defaultLoadOptions, type LoadOptions } from "./options.ts";
import { BENCH_DOMAIN, runLocal, type RunningPeer } from "./peer.ts";
import { cpuSeconds, threadCpuSeconds } from "./proc.ts";

export interface NamedPeer {
  name: string;
  peer: RunningPeer & { output(): string };
}

/** `--messages N (default 5000) --reps R (default 3)`, and the string options named in `extra`. */
export function parseRepsArgs(
  argv: string[],
  usage: string,
  extra: string[] = [],
): { messages: number; reps: number; options: Record<string, string | undefined> } {
  let values: Record<string, string | boolean | undefined>;
  const options: Record<string, { type: "string" }> = { messages: { type: "string" }, reps: { type: "string" } };
  for (const name of extra) options[name] = { type: "string" };
  try {
    ({ values } = parseArgs({ args: argv, options }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const messages = Number(values.messages ?? 5000);
  const reps = Number(values.reps ?? 3);
  if (!Number.isInteger(messages) || messages < 1 || !Number.isInteger(reps) || reps < 1) throw new UsageError(usage);
  return { messages, reps, options: Object.fromEntries(extra.map((n) => [n, values[n] as string | undefined])) };
}

/**
 * The rates (messages per second, end to end) of each peer by name, and the server's CPU per message in µs (utime +
 * stime of its process, all threads, over the repetition); `load` adds options (sender, headers); `after` sees each
 * peer's run (its mailbox) once it is done. `warmup`: messages sent to each peer first and not counted, so that the
 * repetitions compare servers whose code the runtime has already compiled (a server with more code on the message
 * path, the checks for one, otherwise pays its JIT warm-up inside its first repetition). `threadCpu`: also print each
 * repetition's CPU per message by server thread (main, delivery and spool workers, the runtime's pools and JIT
 * threads) and the load tool's.
 */
export async function alternateRuns(
  peers: NamedPeer[],
  o: { messages: number; reps: number; warmup?: number; threadCpu?: boolean; load?: Partial<LoadOptions>; after?: (p: NamedPeer, mailbox: string) => void },
): Promise<Record<string, number[]> & { cpu: Record<string, number[]> }> {
  const rates: Record<string, number[]> = Object.fromEntries(peers.map((p) => [p.name, [] as number[]]));
  const cpu: Record<string, number[]> = Object.fromEntries(peers.map((p) => [p.name, [] as number[]]));
  let run = 0;
  const once = async (p: NamedPeer, messages: number): Promise<{ rate: number; cpuUs: number; local: string }> => {
    const local = runLocal(++run);
    const opts = defaultLoadOptions();
    Object.assign(opts, {
      port: p.peer.port,
      connections: 20,
      messages,
      sizes: [{ bytes: 1024, weight: 1 }],
      to: `${local}@${BENCH_DOMAIN}`,
      maildir: p.peer.maildir(local),
      maildirTimeoutMs: 600_000,
      maxErrorRate: 0,
      progress: false,
      ...o.load,
    });
    // maxErrorRate 0: a single refused message (a defence hit, a failed check) fails the run.
    const c0 = cpuSeconds(p.peer.pid);
    const t0 = o.threadCpu ? threadCpuSeconds(p.peer.pid) : null;
    const l0 = process.cpuUsage();
    const res = await runLoad(opts);
    const cpuUs = ((cpuSeconds(p.peer.pid) - c0) * 1e6) / messages;
    if (t0 !== null) {
      // Per thread name, µs per message; the load tool is this process (it also reads the server's log lines).
      const l1 = process.cpuUsage(l0);
      const threads = [...threadCpuSeconds(p.peer.pid)]
        .map(([name, s]) => [name, ((s - (t0.get(name) ?? 0)) * 1e6) / messages] as const)
        .filter(([, us]) => us >= 5)
        .sort((a, b) => b[1] - a[1]);
      const loadUs = ((l1.user + l1.system) / messages).toFixed(0);
      console.error(`  ${p.name} µs CPU/msg by thread: ${threads.map(([n, us]) => `${n} ${us.toFixed(0)}`).join(", ")}; load tool ${loadUs}`);
    }
    if (!res.ok) throw new Error(`${p.name}: run failed (${res.errors} errors; ${res.firstError ?? ""})\n${p.peer.output().slice(-2000)}`);
    return { rate: res.maildir ? res.maildir.msgsPerSec : res.msgsPerSec, cpuUs, local };
  };
  if ((o.warmup ?? 0) > 0) {
    for (const p of peers) {
      const w = await once(p, o.warmup!);
      console.error(`${p.name} warm-up (${o.warmup} messages, not counted): ${w.rate.toFixed(0)} msgs/s`);
    }
  }
  for (let r = 0; r < o.reps; r++) {
    const order = r % 2 === 0 ? peers : [...peers].reverse();
    for (const p of order) {
      const { rate, cpuUs, local } = await once(p, o.messages);
      rates[p.name]!.push(rate);
      cpu[p.name]!.push(cpuUs);
      console.error(`${p.name} rep ${r + 1}: ${rate.toFixed(0)} msgs/s, server ${cpuUs.toFixed(0)} µs CPU/msg`);
      o.after?.(p, p.peer.maildir(local)!);
    }
  }
  return Object.assign(rates, { cpu });
}
