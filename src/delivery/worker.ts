/**
 * The delivery worker as a library (run in a Web Worker whose entry module, app/delivery-worker.ts, picks the
 * runtime's Dialer and calls runDeliveryWorker). It pops queue ids from the shared ring in batches, loads each item
 * from the spool, hands the pending recipients to the courier for their route kind, records the outcomes, and
 * reports them to the pool. Up to MAX_IN_FLIGHT items are delivered concurrently, so one slow remote destination
 * does not stop the others, and local fsyncs share group-commit rounds.
 *
 * Couriers are chosen by route kind in one place (services.ts), built once per worker.
 *
 * Per recipient (issue 4, point 4): a deferred outcome is retried after queue.retry_intervals[attempts-1] (the
 * last repeating), never later than arrival + queue.max_age; once max_age has passed, a deferred outcome becomes
 * a failure (and a bounce). The schedule lives in the state log, so a restart keeps it.
 *
 * DSN duties (RFC 3461 §4.1: no NOTIFY means FAILURE,DELAY, the choice Postfix makes too): a failed recipient is
 * reported unless NOTIFY=NEVER or the sender is <>; a delivered one when NOTIFY has SUCCESS (remote servers that
 * offer DSN take that duty over, RFC 3461 §5.2.2); a deferred one once, when it has waited past
 * queue.delay_warning and NOTIFY has DELAY. The item then stays in the spool until the pool's onFinished built the
 * DSN from it.
 *
 * Crash safety of remote delivery: each destination's outcomes are appended to the state log and fsync'd as soon
 * as its final reply is in, before anything else waits. The window for a duplicate is that moment: a crash after
 * the remote's 250 and before that fsync completes (one group-commit round, typically well under 10 ms) makes
 * the next start deliver the recipients again. Local Maildir delivery stays exactly once (deterministic names).
 *
 * Hot path: when every recipient is delivered and nothing is to be reported, the item is simply removed; the state
 * log is written only when something is left to do or to report.
 *
 * Segment items (a small message's first attempt: the ring token names its segment record, queue/segment.ts) are
 * read with one pread. Removing one is a line in the segment's done file (flushed when a remote recipient was
 * delivered: a resurrected item would be relayed twice; for Maildir the deterministic names recognise a copy).
 * Anything left to retry or to report first writes the item out as <id>.msg (materialize), and from then on it is
 * an ordinary file item. The result says `released` once the segment record is no longer needed.
 */
import { Ring } from "../ring/index.ts";
import type { RingItem } from "../ring/index.ts";
import { existsSync } from "node:fs";
import { setImmediate } from "node:timers";
import {
  CorruptItemError,
  finishItem,
  isFinal,
  materializeItem,
  msgPath,
  openStored,
  parseToken,
  recordOutcomes,
  retrySchedule,
  SegmentReader,
  storedFromItem,
  SyncBatcher,
  loadSyncFs,
  stateOf,
} from "../queue/index.ts";
import type { RecipientState, StateRecord } from "../queue/index.ts";
import { WorkerServices } from "./services.ts";
import type { WorkerDeps } from "./services.ts";
import { localOutcome } from "../mail/index.ts";
import type { Courier, EnvelopeRecipient, Outcome } from "../mail/index.ts";
import { FLAG_RECHECK, MAX_IN_FLIGHT } from "./worker-protocol.ts";
import type { DeliveryResult, DsnAction, PoolToWorker, WorkerInit, WorkerToPool } from "./worker-protocol.ts";

/** After the ring empties, poll it this long before parking on it. */
const LINGER_MS = 50;
const LINGER_POLL_MS = 1;

export type { WorkerDeps } from "./services.ts";

/** RFC 3461 §4.1: a recipient without NOTIFY is treated as NOTIFY=FAILURE,DELAY. */
const DEFAULT_NOTIFY: NonNullable<EnvelopeRecipient["notify"]> = ["FAILURE", "DELAY"];

/** Which DSN, if any, this outcome calls for. */
function noticeFor(
  init: WorkerInit,
  sender: string,
  arrival: number,
  r: EnvelopeRecipient,
  prev: RecipientState,
  o: Outcome,
  now: number,
): DsnAction | null {
  if (sender === "") return null; // never a DSN to <> (RFC 3461 §6.1, RFC 5321 §4.5.5)
  const notify = r.notify ?? DEFAULT_NOTIFY;
  if (notify.includes("NEVER")) return null;
  if (o.kind === "failed") return notify.includes("FAILURE") ? "failed" : null;
  if (o.kind === "delivered") {
    if (!notify.includes("SUCCESS")) return null;
    if (o.remoteMta === undefined) return "delivered";
    return o.relayed ? "relayed" : null;
  }
  const waited = now - arrival;
  if (init.delayWarningMs > 0 && !prev.warned && waited >= init.delayWarningMs && notify.includes("DELAY")) return "delayed";
  return null;
}

/**
 * Deliver one item's pending recipients and record the outcome in the spool. Never throws. `token`: the ring's
 * item, a queue id or a segment token (queue/segment.ts).
 */
export async function processItem(
  init: WorkerInit,
  services: WorkerServices,
  batcher: SyncBatcher,
  token: string,
  flags: number,
  segments: SegmentReader,
): Promise<DeliveryResult> {
  const { id, seg: tokenSeg, offset } = parseToken(token);
  const recheck = (flags & FLAG_RECHECK) !== 0;
  /** The segment that still holds this item, null once it is (or always was) a file item. */
  let seg = tokenSeg;
  let released = false;
  let raw: Uint8Array | null = null;
  let item;
  try {
    if (seg !== null && recheck && existsSync(msgPath(init.queueDir, id))) {
      // An earlier attempt wrote it out and then died before reporting: the file is the item now.
      await batcher.syncFd(segments.markDone(seg, id));
      seg = null;
      released = true;
    }
    if (seg !== null) {
      raw = segments.read(seg, offset, id);
      if (raw === null) {
        return { id, outcomes: [], done: true, nextAttempt: 0, notices: [], kept: false, released: true, error: "item not in the spool" };
      }
      item = storedFromItem(raw, id);
    } else {
      // Not re-checked = straight from its commit: no state log can exist yet.
      item = openStored(init.queueDir, id, { fresh: !recheck });
    }
  } catch (err) {
    // Left in place: recover() moves a corrupt item aside at the next start.
    const why = err instanceof CorruptItemError ? `corrupt item: ${err.message}` : String(err);
    return { id, outcomes: [], done: false, nextAttempt: 0, notices: [], kept: false, released, error: why };
  }
  if (item === null) {
    return { id, outcomes: [], done: true, nextAttempt: 0, notices: [], kept: false, released, error: "item not in the spool" };
  }
  // Once: out of the segment into <id>.msg, then the record is done (flushed: the file may be finished later).
  let materializing: Promise<void> | null = null;
  const materialize = (): Promise<void> =>
    (materializing ??= (async () => {
      if (seg === null) return;
      await materializeItem(init.queueDir, segments, seg, id, raw!, batcher);
      seg = null;
      released = true;
    })());
  const { envelope, state } = item;
  const groups = new Map<Courier, number[]>();
  for (let i = 0; i < envelope.recipients.length; i++) {
    if (isFinal(state[i])) continue;
    const courier = services.courier(envelope.recipients[i].route.kind);
    if (courier === undefined) continue;
    const g = groups.get(courier);
    if (g) g.push(i);
    else groups.set(courier, [i]);
  }
  const message = item.message;
  const outcomes: DeliveryResult["outcomes"] = [];
  const notices: DeliveryResult["notices"] = [];
  let unrecorded: StateRecord[] = [];
  let nextAttempt = 0;
  const expiry = envelope.arrival + init.maxAgeMs;
  // Each group's outcomes are made durable as they come (a remote 250 must not wait for another destination's
  // transaction); the last group's are left to the end of processItem, which is that moment anyway and may just
  // remove the item instead.
  let pending = 0;
  for (const g of groups.values()) pending += g.length;
  let recordError: unknown = null;
  let stateWritten = false;
  const started = Date.now();
  // Outcomes of several destinations are recorded as they come, which needs the file.
  if (seg !== null && groups.size > 1) {
    try {
      await materialize();
    } catch (err) {
      return { id, outcomes: [], done: false, nextAttempt: 0, notices: [], kept: false, released, error: `spool update failed: ${String(err)}` };
    }
  }

  const apply = async (indices: number[], got: Outcome[]): Promise<void> => {
    const now = Date.now();
    const batch: StateRecord[] = [];
    indices.forEach((index, k) => {
      let o = got[k] ?? missingOutcome();
      // queue.max_age (counted from the 250): a recipient still deferred now is given up and bounced.
      if (o.kind === "deferred" && now >= expiry) o = { ...o, kind: "failed" };
      const prev = state[index];
      const attempts = prev.attempts + 1;
      const at = o.kind === "deferred" ? Math.min(now + retrySchedule(init.retryIntervalsMs, attempts), expiry) : 0;
      if (at > 0 && (nextAttempt === 0 || at < nextAttempt)) nextAttempt = at;
      const action = noticeFor(init, envelope.sender, envelope.arrival, envelope.recipients[index], prev, o, now);
      if (action !== null) notices.push({ index, action });
      const rec: StateRecord = { index, attempts, nextAttempt: at, outcome: o };
      if (prev.warned || action === "delayed") rec.warned = true;
      state[index] = stateOf(rec);
      const r = envelope.recipients[index];
      outcomes.push({ index, outcome: o, address: r.address, courier: r.route.kind, ms: now - started });
      batch.push(rec);
    });
    pending -= batch.length;
    // A segment item here has one courier (else it was written out above), so these are the last outcomes or,
    // for a courier that is exactly once, may wait for the end (a re-check finds what was delivered).
    if (pending <= 0 || seg !== null) {
      unrecorded.push(...batch);
      return;
    }
    try {
      stateWritten = true;
      await recordOutcomes(init.queueDir, id, batch, batcher);
    } catch (err) {
      recordError ??= err;
    }
  };

  await Promise.all(
    [...groups].map(async ([courier, indices]) => {
      const rcpts = indices.map((i) => envelope.recipients[i]);
      try {
        await courier.deliver(message, rcpts, {
          recheck,
          report: (ks, got) => apply(isIdentity(ks, indices.length) ? indices : ks.map((k) => indices[k]), got),
        });
      } catch (err) {
        const done = new Set(outcomes.map((o) => o.index));
        const left = indices.filter((i) => !done.has(i));
        const o = localOutcome("deferred", 451, "4.3.0", `${courier.name} courier error: ${String(err)}`);
        await apply(left, left.map(() => o));
      }
    }),
  );
  const done = state.every(isFinal);
  const kept = notices.length > 0 || (done && state.some((s) => s.status === "failed"));
  try {
    if (recordError !== null) throw recordError;
    // A courier that is not exactly once (remote) must not see this item again: its removal is flushed.
    const durable = envelope.recipients.some((r) => services.courier(r.route.kind)?.exactlyOnce === false);
    if (done && !kept && seg !== null) {
      const fd = segments.markDone(seg, id);
      if (durable) await batcher.syncFd(fd);
      released = true;
    } else if (done && !kept) {
      await finishItem(init.queueDir, id, batcher, { hasState: recheck || stateWritten, durable });
    } else if (unrecorded.length > 0) {
      await materialize();
      await recordOutcomes(init.queueDir, id, unrecorded, batcher);
    }
    unrecorded = [];
  } catch (err) {
    // The deliveries happened but are not on record: report an error so the pool retries with FLAG_RECHECK.
    return { id, outcomes, done: false, nextAttempt: 0, notices: [], kept: false, released, error: `spool update failed: ${String(err)}` };
  }
  return { id, outcomes, done, nextAttempt, notices, kept: done && kept, released };
}

/** ks is 0, 1, …, n-1 (a report of the whole group in order: the common case, mapped without an array). */
function isIdentity(ks: number[], n: number): boolean {
  if (ks.length !== n) return false;
  for (let j = 0; j < n; j++) if (ks[j] !== j) return false;
  return true;
}

function missingOutcome(): Outcome {
  return localOutcome("deferred", 451, "4.3.0", "the courier returned no outcome");
}

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: WorkerToPool): void;
}

/** The worker's main loop: claim up to the free in-flight room from the ring, deliver, report. */
async function run(
  scope: WorkerScope,
  init: WorkerInit,
  deps: WorkerDeps,
  stopping: () => boolean,
  onServices: (s: WorkerServices) => void,
): Promise<void> {
  const ring = new Ring(init.sab);
  const segments = new SegmentReader(init.queueDir);
  const batcher = new SyncBatcher();
  batcher.syncfs = await loadSyncFs();
  const services = new WorkerServices(init, batcher, deps);
  onServices(services);
  const inFlight = new Set<Promise<void>>();
  let wake: (() => void) | null = null;
  const out: RingItem[] = [];
  /** When the ring was last found empty (0: it was not). */
  let idleSince = 0;
  // Results go to the pool once per turn of this thread's loop, not one message each.
  let results: DeliveryResult[] = [];
  const flushResults = (): void => {
    if (results.length === 0) return;
    scope.postMessage({ type: "results", results });
    results = [];
  };
  scope.postMessage({ type: "ready" });
  while (!stopping()) {
    const room = MAX_IN_FLIGHT - inFlight.size;
    if (room === 0) {
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    const n = ring.popBatch(room, out);
    if (n === 0) {
      // Linger before parking: while this worker polls, producers see no sleeper and skip the wake-up syscall,
      // which cost the event loop about one futex wake per message under a steady trickle (11.7% of its samples
      // with a connection per message). A poll adds at most LINGER_POLL_MS to an item's wait.
      const now = Date.now();
      if (idleSince === 0) idleSince = now;
      if (now - idleSince < LINGER_MS) await new Promise<void>((resolve) => setTimeout(resolve, LINGER_POLL_MS));
      else await ring.waitForItems(100);
      continue;
    }
    idleSince = 0;
    const ids: string[] = [];
    for (let k = 0; k < n; k++) ids.push(parseToken(out[k].id).id);
    // Tell the pool first: should this thread die, it re-queues exactly what it had claimed.
    scope.postMessage({ type: "claimed", ids });
    for (let k = 0; k < n; k++) {
      const { id, flags } = out[k];
      const p: Promise<void> = processItem(init, services, batcher, id, flags, segments).then((r) => {
        inFlight.delete(p);
        if (results.push(r) === 1) setImmediate(flushResults);
        if (wake) {
          const w = wake;
          wake = null;
          w();
        }
      });
      inFlight.add(p);
    }
  }
  await Promise.all(inFlight);
  flushResults();
  segments.close();
  services.close();
  scope.postMessage({ type: "stopped" });
}

/**
 * Serve the pool from inside a Worker: registers the message handler on the worker's global scope. Called once by
 * the worker entry module (app/delivery-worker.ts) with the runtime's Dialer.
 */
export function runDeliveryWorker(deps: WorkerDeps): void {
  const scope = globalThis as unknown as WorkerScope;
  let stopRequested = false;
  let sab: SharedArrayBuffer | null = null;
  let services: WorkerServices | null = null;
  /** Settings that arrived before the services were built (a SIGHUP during start-up). */
  let pendingRemote: PoolToWorker | null = null;
  scope.onmessage = (e: MessageEvent) => {
    const msg = e.data as PoolToWorker;
    if (msg.type === "init") {
      sab = msg.sab;
      void run(scope, msg, deps, () => stopRequested, (s) => {
        services = s;
        if (pendingRemote?.type === "remote") s.updateRemote(pendingRemote.remote);
        pendingRemote = null;
      });
    } else if (msg.type === "remote") {
      // SIGHUP: the services rebuild what the new settings change (services.ts).
      if (services !== null) services.updateRemote(msg.remote);
      else pendingRemote = msg;
    } else if (msg.type === "stop") {
      stopRequested = true;
      // End this thread's waitForItems now; other workers take it as a spurious wake-up and sleep again.
      if (sab !== null) new Ring(sab).notify();
    }
  };
}
