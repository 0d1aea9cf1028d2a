/**
 * One load run: N sessions sending messages back to back, shared counters, a progress line on a TTY, then (with
 * a Maildir glob) the wait until every accepted message is a file, for the end-to-end rate.
 */
import { randomBytes } from "node:crypto";
import type { Percentiles } from "./histogram.ts";
import { countMaildir } from "./maildir-count.ts";
import { MessageTemplate } from "./message.ts";
import type { LoadOptions } from "./options.ts";
import { Progress } from "./progress.ts";
import { buildCommands, type Commands, Session, type SessionHost } from "./session.ts";
import { RunStats } from "./stats.ts";

export interface MaildirResult {
  glob: string;
  /** Files there before the run started. */
  baseline: number;
  /** Files expected after the run: baseline + accepted deliveries. */
  expected: number;
  /** Files counted at the end of the wait. */
  found: number;
  /** Deliveries of this run that arrived (found - baseline). */
  delivered: number;
  /** From the first connect until the last file appeared. */
  elapsedMs: number;
  /** Accepted messages per second, end to end. */
  msgsPerSec: number;
  complete: boolean;
}

export interface LoadResult {
  target: string;
  connections: number;
  /** null: bounded by --duration only. */
  planned: number | null;
  durationLimitMs: number | null;
  sizes: { bytes: number; weight: number }[];
  rcpts: number;
  pipelining: boolean;
  starttls: boolean;
  auth: boolean;
  attempted: number;
  accepted: number;
  failed: number;
  connectionErrors: number;
  errors: number;
  errorRate: number;
  /** Message bytes (before stuffing) of the accepted messages. */
  bytes: number;
  /** From the first connect until the last accepted end of data. */
  elapsedMs: number;
  msgsPerSec: number;
  /** 10^6 bytes per second. */
  mbPerSec: number;
  latencyMs: { connect: Percentiles; mail: Percentiles; data: Percentiles };
  replies: Record<string, number>;
  maildir: MaildirResult | null;
  firstError: string | null;
  /** Errors within the threshold, something accepted, and (with a Maildir glob) everything delivered. */
  ok: boolean;
}

/** Sessions started per tick when there are many, so the listen backlog is not flooded. */
const CONNECT_BATCH = 256;

class LoadRun implements SessionHost {
  readonly stats = new RunStats();
  readonly cmds: Commands;
  readonly pipelining: boolean;
  readonly starttls: boolean;
  private issued = 0;
  stopped = false;
  private readonly tag = randomBytes(4).toString("hex");
  private readonly weights: number[];
  private readonly totalWeight: number;
  private open = 0;
  private resolveDone: (() => void) | null = null;

  constructor(readonly o: LoadOptions) {
    this.cmds = buildCommands({ ...o, maxSize: Math.max(...o.sizes.map((s) => s.bytes)) });
    this.pipelining = o.pipelining;
    this.starttls = o.starttls;
    this.weights = o.sizes.map((s) => s.weight);
    this.totalWeight = this.weights.reduce((a, b) => a + b, 0);
  }

  get issuedCount(): number {
    return this.issued;
  }

  take(): number {
    if (this.stopped || this.issued >= this.o.messages) return -1;
    return this.issued++;
  }

  template(s: Session, _n: number): MessageTemplate {
    let k = 0;
    if (this.weights.length > 1) {
      // xorshift32: a cheap, per-session deterministic draw for the size mix.
      let x = s.rand;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      s.rand = x >>> 0;
      let r = (s.rand / 0x1_0000_0000) * this.totalWeight;
      while (k < this.weights.length - 1 && r >= this.weights[k]!) r -= this.weights[k++]!;
    }
    let t = s.templates[k];
    if (!t) {
      t = new MessageTemplate({
        size: this.o.sizes[k]!.bytes,
        from: this.o.from,
        to: this.o.to,
        tag: `${this.tag}.${s.id}`,
        prefix: this.o.headers,
        date: this.o.date || undefined,
        bodySize: this.o.bodySize || undefined,
      });
      s.templates[k] = t;
    }
    return t;
  }

  onDone(): void {
    if (--this.open === 0) this.resolveDone?.();
  }

  run(sessions: Session[]): Promise<void> {
    this.open = sessions.length;
    return new Promise<void>((resolve) => {
      this.resolveDone = resolve;
      let i = 0;
      const batch = (): void => {
        const end = Math.min(sessions.length, i + CONNECT_BATCH);
        for (; i < end; i++) sessions[i]!.start();
        if (i < sessions.length) setTimeout(batch, 5);
      };
      batch();
    });
  }
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export interface RunHooks {
  /** Progress line output (stderr on a TTY by default). */
  progress?: Progress | null;
}

export async function runLoad(o: LoadOptions, hooks: RunHooks = {}): Promise<LoadResult> {
  const run = new LoadRun(o);
  const stats = run.stats;
  const sessions = Array.from({ length: o.connections }, (_, i) => new Session(i, run, { host: o.host, port: o.port }));
  const baseline = o.maildir ? countMaildir(o.maildir) : 0;

  const t0 = performance.now();
  stats.lastReplyAt = t0;
  const progress = hooks.progress === undefined ? (o.progress ? Progress.forTty(o.messages, o.durationMs) : null) : hooks.progress;
  const durationTimer = o.durationMs !== null ? setTimeout(() => (run.stopped = true), o.durationMs) : null;
  // One timer for all sessions: progress, and the stall check (no reply at all for stallMs aborts the run).
  const ticker = setInterval(() => {
    const now = performance.now();
    progress?.update(stats.accepted, stats.failed + stats.connectionErrors, now - t0);
    if (now - stats.lastReplyAt > o.stallMs) {
      stats.noteError(`no reply for ${o.stallMs} ms: run aborted`);
      run.stopped = true;
      for (const s of sessions) s.abort();
    }
  }, 200);
  try {
    await run.run(sessions);
  } finally {
    clearInterval(ticker);
    if (durationTimer) clearTimeout(durationTimer);
  }
  const end = stats.lastAcceptAt > 0 ? stats.lastAcceptAt : performance.now();
  const elapsedMs = Math.max(end - t0, 0.001);
  progress?.finish(stats.accepted, stats.failed + stats.connectionErrors, elapsedMs);

  let maildir: MaildirResult | null = null;
  if (o.maildir) maildir = await waitMaildir(o.maildir, baseline, baseline + stats.deliveries, t0, stats.accepted, o.maildirTimeoutMs, progress);

  const errors = stats.failed + stats.connectionErrors;
  const errorRate = errors / Math.max(1, stats.attempted);
  return {
    target: `${o.host}:${o.port}`,
    connections: o.connections,
    planned: Number.isFinite(o.messages) ? o.messages : null,
    durationLimitMs: o.durationMs,
    sizes: o.sizes,
    rcpts: o.rcpts,
    pipelining: o.pipelining,
    starttls: o.starttls,
    auth: o.auth !== null,
    attempted: stats.attempted,
    accepted: stats.accepted,
    failed: stats.failed,
    connectionErrors: stats.connectionErrors,
    errors,
    errorRate: round(errorRate, 6),
    bytes: stats.bytes,
    elapsedMs: round(elapsedMs),
    msgsPerSec: round((stats.accepted * 1000) / elapsedMs),
    mbPerSec: round(stats.bytes / 1000 / elapsedMs, 3),
    latencyMs: { connect: stats.connect.summary(), mail: stats.mail.summary(), data: stats.data.summary() },
    replies: stats.repliesByCode(),
    maildir,
    firstError: stats.firstError,
    ok: errorRate <= o.maxErrorRate && stats.accepted > 0 && (maildir === null || maildir.complete),
  };
}

/**
 * Polls the glob until `expected` files are there. Gives up after timeoutMs, or after 60 s without a new file
 * (a server that lost messages would otherwise be waited on for the whole timeout).
 */
export async function waitMaildir(
  glob: string,
  baseline: number,
  expected: number,
  t0: number,
  accepted: number,
  timeoutMs: number,
  progress: Progress | null = null,
): Promise<MaildirResult> {
  const start = performance.now();
  let found = countMaildir(glob);
  let lastChange = start;
  let reachedAt = found >= expected ? performance.now() : 0;
  while (reachedAt === 0) {
    const now = performance.now();
    if (now - start > timeoutMs || now - lastChange > 60_000) break;
    await Bun.sleep(found + 1000 >= expected ? 10 : 50);
    const n = countMaildir(glob);
    if (n !== found) {
      found = n;
      lastChange = performance.now();
      progress?.delivered(found - baseline, expected - baseline);
    }
    if (found >= expected) reachedAt = performance.now();
  }
  progress?.endDelivered();
  const elapsedMs = (reachedAt || performance.now()) - t0;
  return {
    glob,
    baseline,
    expected,
    found,
    delivered: found - baseline,
    elapsedMs: round(elapsedMs),
    msgsPerSec: round((accepted * 1000) / elapsedMs),
    complete: reachedAt !== 0,
  };
}
