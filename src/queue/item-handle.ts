/**
 * A spool item from a delivery worker's point of view, end to end (ARCHITECTURE: queue/ owns an item): opened from
 * the ring's token, read as a StoredMessage, its outcomes recorded, kept for a retry or a DSN, or finished. Whether
 * the item is a segment record or a file (segment.ts) is hidden here; a worker sees neither paths nor tokens.
 *
 * Per recipient (CONTRACT `[queue]`): a deferred outcome is retried after queue.retry_intervals[attempts-1] (the
 * last repeating), never later than arrival + queue.max_age; once max_age has passed, a deferred outcome becomes a
 * failure (and a bounce). The schedule lives in the state log, so a restart keeps it. Which outcomes a DSN
 * reports is notices.ts's decision; the item then stays in the spool until that DSN is queued.
 *
 * When outcomes become durable: a courier that is not exactly once (remote SMTP) has its outcomes appended to the
 * state log and flushed as soon as they are reported, unless they are the attempt's last (then finish() does it,
 * and may instead just remove the item): the window for a duplicate is that flush (CONTRACT "Guarantees"). An
 * exactly-once courier's outcomes may wait for finish() (a re-check finds what it delivered).
 *
 * Hot path: when every recipient is delivered and nothing is to be reported, the item is removed without any state
 * written: for a segment item, one line in the segment's done file (flushed only when a courier that is not exactly
 * once delivered: a resurrected item would be sent twice). Anything left to retry or to report first writes a
 * segment item out as <id>.msg (materialize); from then on it is a file item. The result says `released` once the
 * segment record is no longer needed.
 */
import { existsSync } from "node:fs";
import type { Envelope, Outcome, StoredMessage } from "../mail/index.ts";
import type { SyncBatcher } from "../fsio/index.ts";
import { finishItem, materializeItem, recordOutcomes } from "./finish.ts";
import { CorruptItemError } from "./item-format.ts";
import { noticeAction } from "./notices.ts";
import type { Notice } from "./notices.ts";
import { retrySchedule } from "./retry.ts";
import { parseToken, SegmentReader } from "./segment.ts";
import { isFinal, stateOf } from "./state-log.ts";
import type { RecipientState, StateRecord } from "./state-log.ts";
import { msgPath, openStored, storedFromItem } from "./stored.ts";
import type { StoredItem } from "./stored.ts";

/** The [queue] settings an item is handled by. */
export interface QueuePolicy {
  retryIntervalsMs: number[];
  /** queue.max_age: a recipient still deferred this long after arrival fails (and bounces). */
  maxAgeMs: number;
  /** queue.delay_warning: a "delayed" DSN once a recipient has waited this long; 0 = never. */
  delayWarningMs: number;
}

/** What an attempt on an item came to (what the worker reports to the pool). */
export interface ItemResult {
  id: string;
  /** courier: the courier's name ("local" Maildir, "lmtp", "remote"); ms: from the start of this attempt. */
  outcomes: Array<{ index: number; outcome: Outcome; address: string; courier: string; ms: number }>;
  /** Every recipient is delivered or failed. */
  done: boolean;
  /** Earliest next attempt (ms since the epoch) among deferred recipients; 0 when none. */
  nextAttempt: number;
  /** Recipients to report in a DSN now; recorded as reported in the state log already. */
  notices: Notice[];
  /** The item is finished but left in the spool for its DSN; it is deleted once that is queued. */
  kept: boolean;
  /** Set when the item could not be processed (gone, corrupt, spool write failed). */
  error?: string;
  /** The item's segment record is no longer needed (done, deleted, or written out as <id>.msg). */
  released?: boolean;
}

/** A worker's access to the spool: one per worker thread, sharing its group-commit batcher. */
export class ItemStore {
  private readonly segments: SegmentReader;

  constructor(
    readonly dir: string,
    readonly batcher: SyncBatcher,
    readonly policy: QueuePolicy,
  ) {
    this.segments = new SegmentReader(dir);
  }

  /**
   * Open the item a ring token names. `recheck`: an earlier attempt may have delivered part of it without its
   * outcome being recorded (the item may also have a state log). Returns a finished result instead of a handle
   * when the item is gone or cannot be read; never throws. Synchronous unless a flush must come first (a re-check
   * that finds the item written out), so a first attempt costs no extra promise.
   */
  open(token: string, recheck: boolean): ItemHandle | ItemResult | Promise<ItemHandle | ItemResult> {
    const { id, seg, offset } = parseToken(token);
    if (seg !== null && recheck && existsSync(msgPath(this.dir, id))) return this.openWrittenOut(id, seg);
    return this.openNow(id, seg, offset, recheck, false);
  }

  /** An earlier attempt wrote the item out and then died before reporting: the file is the item now. */
  private async openWrittenOut(id: string, seg: string): Promise<ItemHandle | ItemResult> {
    try {
      await this.batcher.syncFd(this.segments.markDone(seg, id));
    } catch (err) {
      return { id, outcomes: [], done: false, nextAttempt: 0, notices: [], kept: false, released: false, error: String(err) };
    }
    return this.openNow(id, null, 0, true, true);
  }

  private openNow(id: string, seg: string | null, offset: number, recheck: boolean, released: boolean): ItemHandle | ItemResult {
    let raw: Uint8Array | null = null;
    let item: StoredItem | null;
    try {
      if (seg !== null) {
        raw = this.segments.read(seg, offset, id);
        if (raw === null) return gone(id, true);
        item = storedFromItem(raw, id);
      } else {
        // Not re-checked = straight from its commit: no state log can exist yet.
        item = openStored(this.dir, id, { fresh: !recheck });
      }
    } catch (err) {
      // Left in place: recover() moves a corrupt item aside at the next start.
      const why = err instanceof CorruptItemError ? `corrupt item: ${err.message}` : String(err);
      return { id, outcomes: [], done: false, nextAttempt: 0, notices: [], kept: false, released, error: why };
    }
    if (item === null) return gone(id, released);
    return new ItemHandle(this, this.segments, item, seg, raw, recheck, released);
  }

  close(): void {
    this.segments.close();
  }
}

function gone(id: string, released: boolean): ItemResult {
  return { id, outcomes: [], done: true, nextAttempt: 0, notices: [], kept: false, released, error: "item not in the spool" };
}

export class ItemHandle {
  readonly id: string;
  readonly envelope: Envelope;
  readonly message: StoredMessage;
  private readonly state: RecipientState[];
  private readonly started = Date.now();
  private readonly outcomes: ItemResult["outcomes"] = [];
  private readonly notices: Notice[] = [];
  private unrecorded: StateRecord[] = [];
  private nextAttempt = 0;
  /** Outcomes still expected in this attempt. */
  private pending = 0;
  /** Every courier of the item's recipients is exactly once (then its removal need not be flushed). */
  private exactlyOnce = true;
  private recordError: unknown = null;
  private stateWritten = false;
  private materializing: Promise<void> | null = null;

  constructor(
    private readonly store: ItemStore,
    private readonly segments: SegmentReader,
    item: StoredItem,
    /** The segment that still holds this item, null once it is (or always was) a file item. */
    private seg: string | null,
    private readonly raw: Uint8Array | null,
    readonly recheck: boolean,
    private released: boolean,
  ) {
    this.id = item.id;
    this.envelope = item.envelope;
    this.message = item.message;
    this.state = item.state;
  }

  /** Neither delivered nor failed yet. */
  isPending(index: number): boolean {
    return !isFinal(this.state[index]);
  }

  /**
   * Start an attempt: `count` recipients over `couriers` couriers; `exactlyOnce`: every courier of the item's
   * recipients is. Outcomes of several couriers are recorded as they come, which needs the item as a file.
   * Returns the result to report instead when that fails.
   */
  begin(count: number, couriers: number, exactlyOnce: boolean): Promise<ItemResult | null> | null {
    this.pending = count;
    this.exactlyOnce = exactlyOnce;
    if (this.seg === null || couriers <= 1) return null; // the common case: nothing to wait for
    return this.materialize().then(
      () => null,
      (err) => this.failure(`spool update failed: ${String(err)}`, []),
    );
  }

  /**
   * Record the outcomes of recipients `indices` (into envelope.recipients), reported by a courier that is (or is
   * not) `exactlyOnce`, named `courier` in the results (default: the recipient's route kind). Never throws: a
   * failed write is reported by finish().
   */
  async record(indices: readonly number[], got: readonly Outcome[], exactlyOnce: boolean, courier?: string): Promise<void> {
    const now = Date.now();
    const policy = this.store.policy;
    const env = this.envelope;
    const expiry = env.arrival + policy.maxAgeMs;
    const batch: StateRecord[] = [];
    for (let k = 0; k < indices.length; k++) {
      const index = indices[k];
      let o = got[k] ?? MISSING;
      // queue.max_age (counted from the 250): a recipient still deferred now is given up and bounced.
      if (o.kind === "deferred" && now >= expiry) o = { ...o, kind: "failed" };
      const prev = this.state[index];
      const attempts = prev.attempts + 1;
      const at = o.kind === "deferred" ? Math.min(now + retrySchedule(policy.retryIntervalsMs, attempts), expiry) : 0;
      if (at > 0 && (this.nextAttempt === 0 || at < this.nextAttempt)) this.nextAttempt = at;
      const delayDue = policy.delayWarningMs > 0 && !prev.warned && now - env.arrival >= policy.delayWarningMs;
      const action = noticeAction(env.sender, env.recipients[index], o, delayDue);
      if (action !== null) this.notices.push({ index, action });
      const rec: StateRecord = { index, attempts, nextAttempt: at, outcome: o };
      if (prev.warned || action === "delayed") rec.warned = true;
      this.state[index] = stateOf(rec);
      const r = env.recipients[index];
      this.outcomes.push({ index, outcome: o, address: r.address, courier: courier ?? r.route.kind, ms: now - this.started });
      batch.push(rec);
    }
    this.pending -= batch.length;
    // The attempt's last outcomes are left to finish() (which may just remove the item); so are an exactly-once
    // courier's while the item is still a segment record (a re-check finds its copies).
    if (this.pending <= 0 || (this.seg !== null && exactlyOnce)) {
      for (const rec of batch) this.unrecorded.push(rec);
      return;
    }
    try {
      await this.materialize();
      this.stateWritten = true;
      await recordOutcomes(this.store.dir, this.id, batch, this.store.batcher);
    } catch (err) {
      this.recordError ??= err;
    }
  }

  /** Of `indices`, those without an outcome yet in this attempt (a courier that threw). */
  unreported(indices: readonly number[]): number[] {
    return indices.filter((i) => !this.outcomes.some((o) => o.index === i));
  }

  /** End the attempt: remove the item, or record what is left and keep it. Never throws. */
  async finish(): Promise<ItemResult> {
    const { state, store } = this;
    const done = state.every(isFinal);
    const kept = this.notices.length > 0 || (done && state.some((s) => s.status === "failed"));
    try {
      if (this.recordError !== null) throw this.recordError;
      const durable = !this.exactlyOnce;
      if (done && !kept && this.seg !== null) {
        const fd = this.segments.markDone(this.seg, this.id);
        if (durable) await store.batcher.syncFd(fd);
        this.released = true;
      } else if (done && !kept) {
        await finishItem(store.dir, this.id, store.batcher, { hasState: this.recheck || this.stateWritten, durable });
      } else if (this.unrecorded.length > 0) {
        await this.materialize();
        await recordOutcomes(store.dir, this.id, this.unrecorded, store.batcher);
      }
      this.unrecorded = [];
    } catch (err) {
      // The deliveries happened but are not on record: an error, so the pool retries with a re-check.
      return this.failure(`spool update failed: ${String(err)}`, this.outcomes);
    }
    return {
      id: this.id,
      outcomes: this.outcomes,
      done,
      nextAttempt: this.nextAttempt,
      notices: this.notices,
      kept: done && kept,
      released: this.released,
    };
  }

  private failure(error: string, outcomes: ItemResult["outcomes"]): ItemResult {
    return { id: this.id, outcomes, done: false, nextAttempt: 0, notices: [], kept: false, released: this.released, error };
  }

  /** Once: out of the segment into <id>.msg, then the record is done (flushed: the file may be finished later). */
  private materialize(): Promise<void> {
    return (this.materializing ??= (async () => {
      if (this.seg === null) return;
      await materializeItem(this.store.dir, this.segments, this.seg, this.id, this.raw!, this.store.batcher);
      this.seg = null;
      this.released = true;
    })());
  }
}

const MISSING: Outcome = { kind: "deferred", code: 451, enhanced: "4.3.0", text: "the courier returned no outcome" };
