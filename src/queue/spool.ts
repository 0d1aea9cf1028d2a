/**
 * The durable spool, DATA/queue/. Its format is ringmta's own (CONTRACT "Storage layout"):
 *
 *   segments/   small messages (≤ 64 KiB), each a record in a segment file appended per group commit; the
 *               record holds exactly what <id>.msg would (segment.ts). A delivery worker finishes such an item at
 *               its first attempt, or writes it out as <id>.msg first when anything is left to retry or report.
 *   <id>.tmp    a message being received. Never valid: deleted at start by recover().
 *   <id>.msg    a committed large message, or a small one written out of its segment: the bytes as received (our Received header first), then the meta JSON
 *               {v: 1, id, envelope} and a 24-byte trailer with lengths and a magic (item-format.ts). It exists
 *               only after write → fsync → rename(<id>.tmp → <id>.msg) → fsync(DATA/queue/), so its presence
 *               means a complete, durable message: this is what a 250 to end-of-data promises.
 *   <id>.state  per-recipient delivery log, one JSON line per attempt outcome (state-log.ts). Absent until the
 *               first attempt that does not deliver everything.
 *   corrupt/    items that failed validation at start, moved aside for a human.
 *
 * <id> is 20 characters of [0-9A-Z] (queue-id.ts). An item is finished when every recipient is delivered or
 * failed; the worker then unlinks <id>.msg (first: that is the atomic "gone") and <id>.state.
 *
 * Small messages (≤ 64 KiB) stay in memory until commit and reach the disk as one segment record; larger ones
 * stream to <id>.tmp in 64 KiB pieces, so a sink never holds more than 64 KiB whatever the message size. The
 * commit itself (record or tail write, flush, rename, directory flush) runs on the spool writer thread in group
 * commits (spool-writer.ts): the event loop never waits on the disk. The Spool counts the live records of each
 * segment (committed, not yet released by a delivery result) and has the writer delete a sealed segment once
 * none is left.
 */
import { closeSync, openSync } from "node:fs";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { Envelope, MessageSink, SpoolPort } from "../delivery/types.ts";
import { FILE_MODE, mkdirDurableSync, unlinkQuiet, writeAllSync } from "../fsio/index.ts";
import { encodeMeta, encodeTrailer } from "./item-format.ts";
import { newQueueId } from "./queue-id.ts";
import { itemToken, parseToken } from "./segment.ts";
import type { WriterReply, WriterRequest } from "./spool-writer-protocol.ts";

export const SINK_BUFFER = 64 * 1024;

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
   * was written as `<id>.msg`). `tail` is handed over (transferred), not copied.
   */
  submit(id: string, fd: number, tail: Uint8Array): Promise<string | null> {
    if (this.closed) return Promise.reject(new Error("spool is closed"));
    const seq = ++this.seq;
    return new Promise<string | null>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      const own = tail.byteOffset === 0 && tail.byteLength === tail.buffer.byteLength && tail.buffer instanceof ArrayBuffer;
      const msg = { type: "commit", seq, id, fd, tail } satisfies WriterRequest;
      if (own) this.writer.postMessage(msg, [tail.buffer as ArrayBuffer]);
      else this.writer.postMessage(msg);
    });
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
  private buf: Uint8Array | null = null;
  private bufLen = 0;
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

  /** Bytes held in memory right now (≤ 64 KiB by construction). */
  get buffered(): number {
    return this.buf === null ? 0 : this.buf.length;
  }

  write(bytes: Uint8Array): void {
    if (this.state !== "open") throw new Error(`spool sink ${this.id} is closed`);
    this.size += bytes.length;
    let off = 0;
    const n = bytes.length;
    while (off < n) {
      if (this.bufLen === SINK_BUFFER) this.flush();
      // A large piece with nothing buffered goes straight to the file: no copy.
      if (this.bufLen === 0 && n - off >= SINK_BUFFER) {
        this.openFile();
        writeAllSync(this.fd, off === 0 ? bytes : bytes.subarray(off));
        return;
      }
      const take = Math.min(SINK_BUFFER - this.bufLen, n - off);
      this.reserve(this.bufLen + take);
      this.buf!.set(off === 0 && take === n ? bytes : bytes.subarray(off, off + take), this.bufLen);
      this.bufLen += take;
      off += take;
    }
  }

  async commit(envelope: Envelope): Promise<void> {
    if (this.state !== "open") throw new Error(`spool sink ${this.id} is closed`);
    this.state = "committing";
    let tail: Uint8Array;
    try {
      envelope.arrival = Date.now();
      const meta = encodeMeta(this.id, envelope);
      const trailer = encodeTrailer(this.size, meta.length);
      // One write for the tail: buffered bytes + meta + trailer.
      tail = new Uint8Array(this.bufLen + meta.length + trailer.length);
      if (this.bufLen > 0) tail.set(this.buf!.subarray(0, this.bufLen), 0);
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

  private openFile(): void {
    // "wx": a leftover of the same name would mean two writers; refuse rather than interleave.
    if (this.fd < 0) this.fd = openSync(this.tmp, "wx", FILE_MODE);
  }

  private flush(): void {
    this.openFile();
    writeAllSync(this.fd, this.buf!.subarray(0, this.bufLen));
    this.bufLen = 0;
  }

  /** Grow the buffer by doubling from 4 KiB: thousands of idle sessions must not each pin 64 KiB. */
  private reserve(need: number): void {
    const cur = this.buf === null ? 0 : this.buf.length;
    if (need <= cur) return;
    let cap = Math.max(cur, 4096);
    while (cap < need) cap *= 2;
    cap = Math.min(cap, SINK_BUFFER);
    const next = Buffer.allocUnsafe(cap);
    if (this.buf !== null && this.bufLen > 0) next.set(this.buf.subarray(0, this.bufLen), 0);
    this.buf = next;
  }
}
