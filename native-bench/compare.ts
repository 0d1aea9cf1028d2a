/**
 * `bun run bench -- compare [--quick]`: every peer available here and ringmta, each on a free loopback port, the
 * same loads with both clients (this generator and Postfix's smtp-source), one table of medians with min–max and
 * the ratios the issue sets as targets. Durable peers (ringmta, Postfix) are measured end to end: a message counts
 * when it is a file in the Maildir. Results go to native-bench/RESULTS.md.
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { UsageError } from "./args.ts";
import { runLoad, waitMaildir } from "./load.ts";
import { describeMachine, machineMarkdown } from "./machine.ts";
import { defaultLoadOptions } from "./options.ts";
import { BENCH_DOMAIN, type Peer, RUN_MAILBOXES, runLocal, type RunningPeer } from "./peer.ts";
import { postfixPeer } from "./peer-postfix.ts";
import { ringmtaPeer } from "./peer-ringmta.ts";
import { smtpServerPeer } from "./peer-smtp-server.ts";
import { smtpSinkPeer } from "./peer-smtp-sink.ts";
import { which } from "./proc.ts";
import { RESULTS_PATH, writeSection } from "./results-file.ts";
import { runSmtpSource, smtpSourceArgs } from "./smtp-source.ts";
import { formatCount, formatSize } from "./units.ts";
import { median } from "./stats.ts";

export type Client = "ringmta-bench" | "smtp-source";

export interface Load {
  size: number;
  sessions: number;
  messages: number;
}

export interface Cell {
  peer: string;
  client: Client;
  load: Load;
  /** msgs/s per repetition (end to end for durable peers); failed repetitions are left out. */
  rates: number[];
  errors: string[];
}

const FROM = "bench@client.test";

/** Messages per run, chosen so a durable peer at ~1,000 msgs/s takes seconds, not minutes. */
function fullLoads(scale: number): Load[] {
  const n = (m: number): number => Math.max(1, Math.round(m * scale));
  return [
    { size: 1024, sessions: 1, messages: n(1000) },
    { size: 1024, sessions: 20, messages: n(5000) },
    { size: 1024, sessions: 100, messages: n(5000) },
    { size: 100 * 1024, sessions: 1, messages: n(300) },
    { size: 100 * 1024, sessions: 20, messages: n(1000) },
    { size: 100 * 1024, sessions: 100, messages: n(1000) },
  ];
}


function log(line: string): void {
  console.error(line);
}

class Mailboxes {
  private next = 1;
  take(): string {
    if (this.next > RUN_MAILBOXES) throw new Error(`more than ${RUN_MAILBOXES} runs`);
    return runLocal(this.next++);
  }
}

async function measure(peer: RunningPeer, client: Client, load: Load, boxes: Mailboxes): Promise<{ rate: number; error: string | null }> {
  const local = boxes.take();
  const to = `${local}@${BENCH_DOMAIN}`;
  const glob = peer.maildir(local);
  try {
    if (client === "ringmta-bench") {
      const o = defaultLoadOptions();
      Object.assign(o, {
        port: peer.port,
        connections: load.sessions,
        messages: load.messages,
        sizes: [{ bytes: load.size, weight: 1 }],
        from: FROM,
        to,
        maildir: glob,
        maildirTimeoutMs: 600_000,
        stallMs: 60_000,
        maxErrorRate: 0,
        progress: false,
      });
      const r = await runLoad(o);
      if (!r.ok) {
        const why = r.maildir && !r.maildir.complete ? `${r.maildir.delivered}/${r.accepted} delivered` : `${r.errors} errors`;
        return { rate: NaN, error: `${why}${r.firstError ? `; ${r.firstError}` : ""}` };
      }
      return { rate: r.maildir ? r.maildir.msgsPerSec : r.msgsPerSec, error: null };
    }
    const args = smtpSourceArgs({ sessions: load.sessions, messages: load.messages, size: load.size, from: FROM, to, port: peer.port });
    const s = await runSmtpSource(args, 900_000);
    if (!s.ok) return { rate: NaN, error: s.error };
    if (glob === null) return { rate: (load.messages * 1000) / s.elapsedMs, error: null };
    const m = await waitMaildir(glob, 0, load.messages, s.t0, load.messages, 600_000);
    if (!m.complete) return { rate: NaN, error: `${m.delivered}/${load.messages} delivered` };
    return { rate: m.msgsPerSec, error: null };
  } catch (err) {
    return { rate: NaN, error: (err as Error).message };
  }
}

function loadName(l: Load): string {
  return `${formatSize(l.size)} × ${l.sessions}`;
}

function fmtCell(c: Cell | undefined): string {
  if (!c) return "–";
  if (c.rates.length === 0) return `failed${c.errors[0] ? ` (${c.errors[0].slice(0, 60)})` : ""}`;
  const med = formatCount(median(c.rates));
  if (c.rates.length === 1) return med;
  return `${med} (${formatCount(Math.min(...c.rates))}–${formatCount(Math.max(...c.rates))})`;
}

function ratio(a: Cell | undefined, b: Cell | undefined): number | null {
  if (!a || !b || a.rates.length === 0 || b.rates.length === 0) return null;
  return median(a.rates) / median(b.rates);
}

function fmtRatio(r: number | null): string {
  return r === null ? "–" : `${r.toFixed(2)}×`;
}

export interface CompareReport {
  /** command: the exact command line that started the peer in this run (null when it did not run). */
  peers: { name: string; role: string; skipped: string | null; command: string | null }[];
  clients: Client[];
  loads: Load[];
  /** A longer run into smtp-sink only, comparing the two clients. */
  clientLoad: Load;
  reps: number;
  cells: Cell[];
}

function find(rep: CompareReport, peer: string, client: Client, load: Load): Cell | undefined {
  return rep.cells.find((c) => c.peer === peer && c.client === client && c.load === load);
}

/** The Markdown table: one row per load and client, a column per peer, then ringmta's ratios. */
export function compareTable(rep: CompareReport): string {
  const peers = rep.peers.filter((p) => p.skipped === null).map((p) => p.name);
  const others = peers.filter((p) => p !== "ringmta");
  const head = ["load (size × sessions)", "client", ...peers, ...others.map((p) => `ringmta / ${p}`)];
  const rows = [head, head.map(() => "---")];
  for (const load of rep.loads) {
    for (const client of rep.clients) {
      const cells = peers.map((p) => fmtCell(find(rep, p, client, load)));
      const ratios = others.map((p) => fmtRatio(ratio(find(rep, "ringmta", client, load), find(rep, p, client, load))));
      rows.push([loadName(load), client, ...cells, ...ratios]);
    }
  }
  return rows.map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The issue's targets, checked on this run's medians, per client. */
export function targetLines(rep: CompareReport): string[] {
  const out: string[] = [];
  const at = (size: number, sessions: number): Load | undefined => rep.loads.find((l) => l.size === size && l.sessions === sessions);
  const check = (label: string, load: Load | undefined, peer: string, min: number): void => {
    if (!load) return;
    for (const client of rep.clients) {
      const r = ratio(find(rep, "ringmta", client, load), find(rep, peer, client, load));
      if (r === null) {
        out.push(`- ${label} (${client}): not measured`);
        continue;
      }
      out.push(`- ${label} (${client}): ${r.toFixed(2)}× — ${r >= min ? "met" : "MISSED"}`);
    }
  };
  check("1 KiB, 20 sessions: ringmta ≥ 10× Postfix (end to end)", at(1024, 20), "Postfix", 10);
  check("1 KiB, 20 sessions: ringmta ≥ 0.5× smtp-sink (ringmta end to end)", at(1024, 20), "smtp-sink", 0.5);
  check("100 KiB, 20 sessions: ringmta ≥ 3× Postfix (end to end)", at(100 * 1024, 20), "Postfix", 3);
  return out;
}

/** The generator against smtp-source, both pushing into smtp-sink: the client must never be the bottleneck. */
export function clientLines(rep: CompareReport): string[] {
  const out: string[] = [];
  for (const load of [rep.clientLoad, ...rep.loads]) {
    const r = ratio(find(rep, "smtp-sink", "ringmta-bench", load), find(rep, "smtp-sink", "smtp-source", load));
    if (r === null) continue;
    const a = fmtCell(find(rep, "smtp-sink", "ringmta-bench", load));
    const b = fmtCell(find(rep, "smtp-sink", "smtp-source", load));
    out.push(
      `- ${loadName(load)}, ${formatCount(load.messages)} messages${load === rep.clientLoad ? " (the client check)" : ""}: ` +
        `ringmta-bench ${a} msgs/s, smtp-source ${b} msgs/s: ratio ${r.toFixed(2)}×`,
    );
  }
  return out;
}

export async function runCompare(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        quick: { type: "boolean" },
        reps: { type: "string" },
        scale: { type: "string" },
        peers: { type: "string" },
        write: { type: "boolean" },
        "no-write": { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const quick = values.quick === true;
  const reps = values.reps !== undefined ? Number(values.reps) : quick ? 1 : 3;
  const scale = values.scale !== undefined ? Number(values.scale) : 1;
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new UsageError("--reps: expected 1 to 20");
  if (!(scale > 0 && scale <= 100)) throw new UsageError("--scale: expected a factor above 0");
  const loads = quick ? [{ size: 1024, sessions: 20, messages: Math.max(1, Math.round(2000 * scale)) }] : fullLoads(scale);

  const all: Peer[] = [smtpSinkPeer(), smtpServerPeer(), postfixPeer(), ringmtaPeer()];
  const wanted = values.peers?.split(",").map((s) => s.trim().toLowerCase());
  const peers = wanted ? all.filter((p) => wanted.includes(p.name.toLowerCase())) : all;
  const clients: Client[] = ["ringmta-bench"];
  if (which("smtp-source")) clients.push("smtp-source");
  else log("bench: smtp-source skipped (install: apt-get install -y postfix)");

  const clientLoad: Load = { size: 1024, sessions: 20, messages: Math.max(1, Math.round((quick ? 10_000 : 40_000) * scale)) };
  const rep: CompareReport = { peers: [], clients, loads, clientLoad, reps, cells: [] };
  const boxes = new Mailboxes();
  const started = performance.now();
  const toRemove: RunningPeer[] = [];
  for (const peer of peers) {
    const skipped = peer.missing();
    rep.peers.push({ name: peer.name, role: peer.role, skipped, command: null });
    if (skipped) {
      log(`bench: ${peer.name} ${skipped}`);
      continue;
    }
    log(`bench: starting ${peer.name}`);
    let running: RunningPeer;
    try {
      running = await peer.start();
    } catch (err) {
      rep.peers[rep.peers.length - 1]!.skipped = `failed to start: ${(err as Error).message.split("\n")[0]}`;
      log(`bench: ${peer.name} failed to start: ${(err as Error).message}`);
      continue;
    }
    rep.peers[rep.peers.length - 1]!.command = running.command;
    try {
      // Warm-up, not counted: the peer's processes and caches, and this process's JIT.
      await measure(running, "ringmta-bench", { size: 1024, sessions: 20, messages: 500 }, boxes);
      const peerLoads = peer.name === "smtp-sink" && clients.length > 1 ? [clientLoad, ...loads] : loads;
      for (const load of peerLoads) {
        for (const client of clients) {
          const cell: Cell = { peer: peer.name, client, load, rates: [], errors: [] };
          rep.cells.push(cell);
          for (let i = 0; i < reps; i++) {
            const r = await measure(running, client, load, boxes);
            if (r.error === null) cell.rates.push(r.rate);
            else cell.errors.push(r.error);
            log(
              `  ${peer.name.padEnd(12)} ${loadName(load).padEnd(12)} ${formatCount(load.messages).padStart(6)} msgs  ${client.padEnd(14)} ` +
                `rep ${i + 1}/${reps}: ${r.error === null ? `${formatCount(r.rate)} msgs/s` : `FAILED: ${r.error}`}`,
            );
          }
        }
      }
    } finally {
      await running.stop();
      toRemove.push(running);
    }
  }
  // Only now: a mass deletion slows file creation for a minute after it (peer.ts, remove()).
  for (const r of toRemove) r.remove();
  const minutes = (performance.now() - started) / 60_000;

  const table = compareTable(rep);
  const targets = targetLines(rep);
  const clientCmp = clientLines(rep);
  console.log(table);
  console.log("\nTargets (issue 5):\n" + targets.join("\n"));
  if (clientCmp.length) console.log("\nClients into smtp-sink:\n" + clientCmp.join("\n"));

  const write = values.write === true || (!quick && values["no-write"] !== true);
  if (write) {
    writeSection("compare", resultsMarkdown(rep, argv, table, targets, clientCmp, minutes));
    log(`bench: wrote ${RESULTS_PATH}`);
  }
  const failed = rep.cells.some((c) => c.errors.length > 0);
  return failed ? 1 : 0;
}

function resultsMarkdown(
  rep: CompareReport,
  argv: string[],
  table: string,
  targets: string[],
  clientCmp: string[],
  minutes: number,
): string {
  const m = describeMachine();
  const peerLines = rep.peers.map((p) => `- ${p.name} — ${p.role}: ${p.skipped ?? "measured"}`);
  // Exactly as this run started each peer (temp paths included), so the run can be repeated by hand.
  const commandLines = rep.peers.filter((p) => p.command !== null).map((p) => `- ${p.name}, as run: \`${p.command}\``);
  const loads = rep.loads.map((l) => `${formatSize(l.size)} × ${l.sessions} sessions: ${formatCount(l.messages)} messages`).join("; ");
  return `## Comparison (\`bun run bench -- compare${argv.length ? " " + argv.join(" ") : ""}\`)

Run ${new Date().toISOString()}, ${minutes.toFixed(1)} minutes of machine time; load average at the end
${loadavg().map((v) => v.toFixed(2)).join(" / ")} (1 / 5 / 15 min: anything else running shows here).

### Machine
${machineMarkdown(m)}

### Peers
${peerLines.join("\n")}

### Commands
- this comparison: \`bun run bench -- compare${argv.length ? " " + argv.join(" ") : ""}\` (as root, for \`postfix -c DIR start\`)
${commandLines.join("\n")}

What the peers were set up with:
- ringmta: \`bun src/main.ts serve --config <tmp>/ringmta.toml\` — one plaintext listener on 127.0.0.1, local domain
  ${BENCH_DOMAIN} with catch_all = true, \`[delivery] workers = 2\`, \`[metrics] listen = ""\`,
  \`[limits] max_connections_per_ip = 1000\` (see native-bench/peer-ringmta.ts)
- Postfix: \`postfix -c /tmp/ringmta-bench-postfix/conf start\` — smtpd on 127.0.0.1:<port>, virtual(8) into
  Maildir for ${BENCH_DOMAIN} (virtual_mailbox_base under the temp dir, static uid/gid 65534,
  smtpd_peername_lookup = no, chroot off; see native-bench/peer-postfix.ts); the config dir is listed in
  /etc/postfix/main.cf alternate_config_directories (the one system-wide change)
- smtp-sink: \`smtp-sink -u nobody 127.0.0.1:<port> 1000\` (without -c: its per-message counter on stdout slowed it by
  about a third)
- smtp-server: \`npm install smtp-server\` in /tmp/ringmta-bench-smtp-server, a script discarding each stream (Node)
- client ringmta-bench: \`bun run bench -- --port <port> --connections S --messages N --size SIZE --to runK@${BENCH_DOMAIN}
  [--maildir <mailbox>]\` (in-process, no pipelining)
- client smtp-source: \`smtp-source -s S -m N -l <SIZE-140> -d -f ${FROM} -t runK@${BENCH_DOMAIN} -M bench.ringmta 127.0.0.1:<port>\`
- loads: ${loads}; ${rep.reps} repetition(s); each run sends to a fresh mailbox.

### Messages per second: median (min–max) over ${rep.reps} repetition(s)
ringmta and Postfix: end to end (from the first connect until the last message is a file in the Maildir);
smtp-sink and smtp-server: accepted (they discard).

${table}

### Targets
${targets.join("\n") || "- not measured"}

### Clients into smtp-sink (the generator must out-push smtp-source)
${clientCmp.join("\n") || "- not measured"}
`;
}
