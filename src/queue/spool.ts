/**
 * The durable spool, DATA/queue/. Its format is ringmta's own (CONTRACT "Storage layout"):
 *
 *   segments/   messages held in memory (≤ 1 MiB), each a record in a segment file appended per group commit; the
 *               record holds exactly what <id>.msg would (segment.ts). A delivery worker finishes such an item at
 *               its first attempt, or writes it out as <id>.msg first when anything is left to retry or report.
 *   <id>.tmp    a message being received. Never valid: deleted at start by recover().
 *   <id>.msg    a committed large message, or a small one written out of its segment: the bytes as received (our Received header first), then the meta JSON
 *               {v: 1, id, envelope} (v2 adds the stages' prepended header fields) and a 24-byte trailer with lengths and a magic (item-format.ts). It exists
 *               only after write → fsync → rename(<id>.tmp → <id>.msg) → fsync(DATA/queue/), so its presence
 *               means a complete, durable message: this is what a 250 to end-of-data promises.
 *   <id>.state  per-recipient delivery log, one JSON line per attempt outcome (state-log.ts). Absent until the
 *               first attempt that does not deliver everything.
 *   corrupt/    items that failed validation at start, moved aside for a human.
 *
 * <id> is 20 characters of [0-9A-Z] (queue-id.ts). An item is finished when every recipient is delivered or
 * failed; the worker then unlinks <id>.msg (first: that is the atomic "gone") and <id>.state.
 *
 * A message of up to MEMORY_MESSAGE_MAX (1 MiB) stays in memory until commit and reaches the disk as one segment
 * record, as long as all sinks together hold less than MEMORY_BUDGET (64 MiB); a larger one, or one that finds the
 * budget spent, streams to <id>.tmp in 64 KiB pieces, so a sink never holds more than 1 MiB whatever the message
 * size, and thousands of sessions in DATA at once hold at most the budget plus 64 KiB each. The
 * commit itself (record or tail write, flush, rename, directory flush) runs on the spool writer thread in group
 * commits (spool-writer.ts): the event loop never waits on the disk. The Spool counts the live records of each
 * segment (committed, not yet released by a delivery result) and has the writer delete a sealed segment once
 * none is left.
 */
import { closeSync, openSync } from "node:fs";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { Envelope, MessageSink, SpoolPort } from "../mail/index.ts";
import { FILE_MODE, mkdirDurableSync, unlinkQuiet, writeAllSync } from "../fsio/index.ts";
import { encodeMeta, encodeTrailer } from "./item-format.ts";
import { newQueueId } from "./queue-id.ts";
import { itemToken, parseToken } from "./segment.ts";
import type { Commit, WriterReply, WriterRequest } from "./spool-writer-protocol.ts";
import { setImmediate } from "node:timers";

/** The staging buffer of a message that streams to `<id>.tmp`. */
export const SINK_BUFFER = 64 * 1024;
/** A message up to this size is held in memory and committed as a segment record (no file of its own). */
export const MEMORY_MESSAGE_MAX = 1024 * 1024;
/** All sinks together hold at most this much in memory; beyond it, messages stream to files. */
export const MEMORY_BUDGET = 64 * 1024 * 1024;

/**
 * A message the spool has made durable. `ref` is what the delivery pool is given: the id for an item written as
 * <id>.msg, the segment token (queue/segment.ts) for an item held in a segment.
 */
export interface CommittedItem {
  id: string;
  ref: string;
  envelope: Envelope;
  size: number;
}

export interface SpoolOptions {
  dir: string;
  onCommitted(item: CommittedItem): void;
  /** Each group-commit round: how long it took and how many messages it made durable (metrics). */
  onRound?(ms: number, messages: number): void;
}

interface Waiter {
  resolve(loc: string | null): void;
  reject(err: Error): void;
}

interface SegmentUse {
  live: number;
  sealed: boolean;
}

export class Spool implements SpoolPort {
  readonly dir: string;
  private readonly onCommitted: SpoolOptions["onCommitted"];
  private readonly onRound: SpoolOptions["onRound"];
  private writer: Worker;
  private seq = 0;
  private readonly waiting = new Map<number, Waiter>();
  private closed = false;
  private readonly segments = new Map<string, SegmentUse>();
  /** Bytes of MEMORY_BUDGET held by sinks. */
  private memory = 0;
  /** Group-commit rounds so far (observable for tests and metrics). */
  rounds = 0;

  constructor(opts: SpoolOptions) {
    this.dir = opts.dir;
    this.onCommitted = opts.onCommitted;
    this.onRound = opts.onRound;
    mkdirDurableSync(this.dir);
    this.writer = this.startWriter();
  }

  begin(): MessageSink {
    return new SpoolSink(this.dir, newQueueId(), this, this.onCommitted);
  }

  /**
   * Hand a commit to the writer thread; resolves when the item is durable, with its segment location (null when it
   * was written as `<id>.msg`). `tail`'s buffer must be the caller's alone: it is transferred, not copied.
   */
  submit(id: string, fd: number, tail: Uint8Array): Promise<string | null> {
    if (this.closed) return Promise.reject(new Error("spool is closed"));
    const seq = ++this.seq;
    return new Promise<string | null>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      // Commits of one event-loop turn (many sessions' chunks are handled in one) go to the writer together.
      if (this.outbox.push({ seq, id, fd, tail }) === 1) setImmediate(this.post);
    });
  }

  private outbox: Commit[] = [];
  private readonly post = (): void => {
    const commits = this.outbox;
    this.outbox = [];
    this.writer.postMessage({ type: "commit", commits } satisfies WriterRequest, commits.map((c) => c.tail.buffer as ArrayBuffer));
  };

  /**
   * Change the bytes of the memory budget a sink holds by `delta`. `withinBudget`: refuse (false) a growth that
   * does not fit; without it the change is taken regardless (a buffer that must exist: staging, a commit's tail).
   */
  takeMemory(delta: number, withinBudget: boolean): boolean {
    if (withinBudget && delta > 0 && this.memory + delta > MEMORY_BUDGET) return false;
    this.memory += delta;
    return true;
  }

  /** Bytes of the memory budget held by sinks now (for tests and metrics). */
  get memoryHeld(): number {
    return this.memory;
  }

  /** A delivery worker no longer needs the segment record `ref` (delivered, deleted or written out as <id>.msg). */
  release(ref: string): void {
    const name = parseToken(ref).seg;
    if (name === null) return;
    const s = this.segments.get(name);
    if (s === undefined) return;
    s.live--;
    this.retireIfDone(name, s);
  }

  private retireIfDone(name: string, s: SegmentUse): void {
    if (!s.sealed || s.live > 0) return;
    this.segments.delete(name);
    this.writer.postMessage({ type: "retire", seg: name } satisfies WriterRequest);
  }

  /** After the last session is gone (shutdown). Commits in flight still complete first. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.waiting.size > 0) await new Promise((r) => setTimeout(r, 5));
    this.writer.terminate();
  }

  private use(name: string): SegmentUse {
    let s = this.segments.get(name);
    if (s === undefined) {
      s = { live: 0, sealed: false };
      this.segments.set(name, s);
    }
    return s;
  }

  private startWriter(): Worker {
    // Written beside spool-writer.ts so that the same URL works from source and from the compiled binary.
    const w = new Worker(new URL("./spool-writer.ts", import.meta.url), { type: "module" });
    w.onmessage = (e: MessageEvent): void => {
      const m = e.data as WriterReply;
      if (m.type !== "done") return;
      this.rounds++;
      this.onRound?.(m.ms, m.seqs.length);
      for (let i = 0; i < m.seqs.length; i++) {
        const seq = m.seqs[i]!;
        const waiter = this.waiting.get(seq);
        if (!waiter) continue;
        this.waiting.delete(seq);
        const err = m.errors?.[i];
        if (err) {
          waiter.reject(new Error(err));
          continue;
        }
        const loc = m.locs[i] ?? null;
        if (loc !== null) this.use(loc.slice(0, loc.indexOf(":"))).live++;
        waiter.resolve(loc);
      }
      for (const name of m.sealed) {
        const s = this.use(name);
        s.sealed = true;
        this.retireIfDone(name, s);
      }
    };
    w.onerror = (e: Event): void => {
      e.preventDefault();
      // Whatever was in flight is not known to be durable: refuse it (the client gets 451 and retries).
      const err = new Error(`spool writer failed: ${(e as ErrorEvent).message ?? "unknown error"}`);
      for (const waiter of this.waiting.values()) waiter.reject(err);
      this.waiting.clear();
      w.terminate();
      if (!this.closed) this.writer = this.startWriter();
    };
    w.postMessage({ type: "init", dir: this.dir } satisfies WriterRequest);
    return w;
  }
}

type SinkState = "open" | "committing" | "done";

export class SpoolSink implements MessageSink {
  readonly id: string;
  size = 0;
  /** In memory: the whole message so far. Spilled (fd >= 0): a staging buffer of at most SINK_BUFFER. */
  private buf: Uint8Array | null = null;
  private bufLen = 0;
  /** Bytes of the spool's memory budget this sink holds (its buffer's capacity, then its tail until durable). */
  private held = 0;
  private fd = -1;
  private state: SinkState = "open";
  private readonly tmp: string;

  constructor(
    private readonly dir: string,
    id: string,
    private readonly spool: Spool,
    private readonly onCommitted: SpoolOptions["onCommitted"],
  ) {
    this.id = id;
    this.tmp = join(dir, `${id}.tmp`);
  }

  /** Bytes held in memory right now (≤ MEMORY_MESSAGE_MAX in memory, ≤ SINK_BUFFER once spilled). */
  get buffered(): number {
    return this.buf === null ? 0 : this.buf.length;
  }

  /** Spilled to `<id>.tmp` (too large for memory, or the spool's budget was spent). */
  get spilled(): boolean {
    return this.fd >= 0;
  }

  write(bytes: Uint8Array): void {
    if (this.state !== "open") throw new Error(`spool sink ${this.id} is closed`);
    this.size += bytes.length;
    if (this.fd < 0) {
      if (this.grow(this.bufLen + bytes.length)) {
        this.buf!.set(bytes, this.bufLen);
        this.bufLen += bytes.length;
        return;
      }
      this.spill();
    }
    this.stage(bytes);
  }

  async commit(envelope: Envelope, prepend?: Uint8Array): Promise<void> {
    if (this.state !== "open") throw new Error(`spool sink ${this.id} is closed`);
    this.state = "committing";
    let tail: Uint8Array;
    try {
      envelope.arrival = Date.now();
      const meta = encodeMeta(this.id, envelope, prepend);
      const trailer = encodeTrailer(this.size, meta.length);
      const need = this.bufLen + meta.length + trailer.length;
      // The tail (the whole item when in memory) is built in the buffer when it has room: no copy of the message.
      if (this.buf !== null && this.buf.length >= need) {
        tail = this.buf.subarray(0, need);
      } else {
        tail = Buffer.allocUnsafeSlow(need);
        if (this.bufLen > 0) tail.set(this.buf!.subarray(0, this.bufLen), 0);
        this.account(need);
      }
      tail.set(meta, this.bufLen);
      tail.set(trailer, this.bufLen + meta.length);
    } catch (err) {
      this.release();
      throw err;
    }
    this.buf = null;
    this.bufLen = 0;
    // From here the writer thread owns the descriptor (and the .tmp): it closes and, on failure, removes them.
    const fd = this.fd;
    this.fd = -1;
    let loc: string | null;
    try {
      loc = await this.spool.submit(this.id, fd, tail);
    } finally {
      this.state = "done";
      this.account(0);
    }
    this.onCommitted({ id: this.id, ref: loc === null ? this.id : itemToken(this.id, loc), envelope, size: this.size });
  }

  abort(): void {
    if (this.state !== "open") return;
    this.release();
  }

  private release(): void {
    this.state = "done";
    this.buf = null;
    this.bufLen = 0;
    this.account(0);
    if (this.fd >= 0) {
      try {
        closeSync(this.fd);
      } catch {
        // the descriptor is gone either way
      }
      this.fd = -1;
      unlinkQuiet(this.tmp);
    }
  }

  /** Hold `bytes` of the spool's budget (replacing what was held); false when the budget does not allow it. */
  private account(bytes: number, withinBudget = false): boolean {
    if (!this.spool.takeMemory(bytes - this.held, withinBudget)) return false;
    this.held = bytes;
    return true;
  }

  /**
   * Room for `need` bytes in memory: grow by doubling from 4 KiB up to MEMORY_MESSAGE_MAX, within the spool's
   * budget, so thousands of idle sessions do not each pin a large buffer. False: the message goes to a file.
   */
  private grow(need: number): boolean {
    const cur = this.buf === null ? 0 : this.buf.length;
    if (need <= cur) return true;
    if (need > MEMORY_MESSAGE_MAX) return false;
    let cap = Math.max(cur, 4096);
    while (cap < need) cap *= 2;
    // Room for the meta and trailer too, so that commit rarely needs a second buffer.
    cap = Math.min(cap, MEMORY_MESSAGE_MAX + 64 * 1024);
    if (!this.account(cap, true)) return false;
    // allocUnsafeSlow: never a slice of Buffer's shared pool, because the buffer is transferred to the writer.
    const next = Buffer.allocUnsafeSlow(cap);
    if (this.buf !== null && this.bufLen > 0) next.set(this.buf.subarray(0, this.bufLen), 0);
    this.buf = next;
    return true;
  }

  /** From memory to `<id>.tmp`: write what is held, keep a staging buffer of SINK_BUFFER. */
  private spill(): void {
    // "wx": a leftover of the same name would mean two writers; refuse rather than interleave.
    this.fd = openSync(this.tmp, "wx", FILE_MODE);
    if (this.bufLen > 0) writeAllSync(this.fd, this.buf!.subarray(0, this.bufLen));
    this.bufLen = 0;
    if (this.buf === null || this.buf.length !== SINK_BUFFER) {
      this.buf = Buffer.allocUnsafeSlow(SINK_BUFFER);
      this.account(SINK_BUFFER);
    }
  }

  /** Spilled: gather small pieces into SINK_BUFFER writes; a large piece with nothing staged goes straight out. */
  private stage(bytes: Uint8Array): void {
    let off = 0;
    const n = bytes.length;
    while (off < n) {
      if (this.bufLen === SINK_BUFFER) {
        writeAllSync(this.fd, this.buf!.subarray(0, this.bufLen));
        this.bufLen = 0;
      }
      if (this.bufLen === 0 && n - off >= SINK_BUFFER) {
        writeAllSync(this.fd, off === 0 ? bytes : bytes.subarray(off));
        return;
      }
      const take = Math.min(SINK_BUFFER - this.bufLen, n - off);
      this.buf!.set(off === 0 && take === n ? bytes : bytes.subarray(off, off + take), this.bufLen);
      this.bufLen += take;
      off += take;
    }
  }
}
