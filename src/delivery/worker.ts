/**
 * The delivery worker (a Web Worker module, run by pool.ts). It pops queue ids from the shared ring in batches,
 * loads each item from the spool, hands the pending recipients to the courier for their route kind, records the
 * outcomes, and reports them to the pool. Up to MAX_IN_FLIGHT items are delivered concurrently so that their
 * fsyncs share group-commit rounds.
 *
 * Couriers are chosen by route kind in one place (buildCouriers): a remote courier plugs in as
 * `couriers.set("remote", …)`. Recipients whose kind has no courier are left pending, untouched; the pool does
 * not send items whose pending recipients all lack a courier.
 *
 * Hot path: when every recipient is delivered the item is simply removed; the state log is written only when
 * something is left to do (deferred) or to report (failed).
 */
import { Ring } from "../ring/index.ts";
import type { RingItem } from "../ring/index.ts";
import {
  CorruptItemError,
  finishItem,
  isFinal,
  openStored,
  recordOutcomes,
  retrySchedule,
  SyncBatcher,
} from "../queue/index.ts";
import type { StateRecord } from "../queue/index.ts";
import { MaildirCourier } from "./local/index.ts";
import type { LocalMessage } from "./local/index.ts";
import type { Courier, Outcome, Route } from "./types.ts";
import { COURIER_KINDS, FLAG_RECHECK, MAX_IN_FLIGHT } from "./worker-protocol.ts";
import type { DeliveryResult, PoolToWorker, WorkerInit, WorkerToPool } from "./worker-protocol.ts";

export type CourierMap = Map<Route["kind"], Courier>;

export function buildCouriers(init: WorkerInit, batcher: SyncBatcher): CourierMap {
  const couriers: CourierMap = new Map();
  couriers.set("local", new MaildirCourier({ mailDir: init.mailDir, hostname: init.hostname, batcher }));
  for (const kind of COURIER_KINDS) if (!couriers.has(kind)) throw new Error(`no courier for route kind ${kind}`);
  return couriers;
}

/** Deliver one item's pending recipients and record the outcome in the spool. Never throws. */
export async function processItem(
  init: WorkerInit,
  couriers: CourierMap,
  batcher: SyncBatcher,
  id: string,
  flags: number,
): Promise<DeliveryResult> {
  let item;
  try {
    item = openStored(init.queueDir, id);
  } catch (err) {
    // Left in place: recover() moves a corrupt item aside at the next start.
    const why = err instanceof CorruptItemError ? `corrupt item: ${err.message}` : String(err);
    return { id, outcomes: [], done: false, nextAttempt: 0, error: why };
  }
  if (item === null) return { id, outcomes: [], done: true, nextAttempt: 0, error: "item not in the spool" };
  const { envelope, state } = item;
  const groups = new Map<Courier, number[]>();
  for (let i = 0; i < envelope.recipients.length; i++) {
    if (isFinal(state[i])) continue;
    const courier = couriers.get(envelope.recipients[i].route.kind);
    if (courier === undefined) continue;
    const g = groups.get(courier);
    if (g) g.push(i);
    else groups.set(courier, [i]);
  }
  const message: LocalMessage = { ...item.message, recheck: (flags & FLAG_RECHECK) !== 0 };
  const outcomes: DeliveryResult["outcomes"] = [];
  await Promise.all(
    [...groups].map(async ([courier, indices]) => {
      let got: Outcome[];
      try {
        got = await courier.deliver(message, indices.map((i) => envelope.recipients[i]));
      } catch (err) {
        got = indices.map(() => ({ kind: "deferred", reply: `4.3.0 ${courier.name} courier error: ${String(err)}` }));
      }
      indices.forEach((index, k) => outcomes.push({ index, outcome: got[k] ?? missingOutcome(courier) }));
    }),
  );
  const now = Date.now();
  const records: StateRecord[] = [];
  let nextAttempt = 0;
  for (const { index, outcome } of outcomes) {
    const attempts = state[index].attempts + 1;
    const at = outcome.kind === "deferred" ? now + retrySchedule(init.retryIntervalsMs, attempts) : 0;
    if (at > 0 && (nextAttempt === 0 || at < nextAttempt)) nextAttempt = at;
    state[index] = { status: outcome.kind, attempts, nextAttempt: at, lastReply: outcome.reply };
    records.push({ index, status: outcome.kind, attempts, nextAttempt: at, lastReply: outcome.reply });
  }
  const done = state.every(isFinal);
  try {
    if (done && state.every((s) => s.status === "delivered")) await finishItem(init.queueDir, id, batcher);
    else if (records.length > 0) await recordOutcomes(init.queueDir, id, records, batcher);
  } catch (err) {
    // The deliveries happened but are not on record: report an error so the pool retries with FLAG_RECHECK.
    return { id, outcomes, done: false, nextAttempt: 0, error: `spool update failed: ${String(err)}` };
  }
  return { id, outcomes, done, nextAttempt };
}

function missingOutcome(courier: Courier): Outcome {
  return { kind: "deferred", reply: `4.3.0 ${courier.name} courier returned no outcome` };
}

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: WorkerToPool): void;
}

/** The worker's main loop: claim up to the free in-flight room from the ring, deliver, report. */
async function run(scope: WorkerScope, init: WorkerInit, stopping: () => boolean): Promise<void> {
  const ring = new Ring(init.sab);
  const batcher = new SyncBatcher();
  const couriers = buildCouriers(init, batcher);
  const inFlight = new Set<Promise<void>>();
  let wake: (() => void) | null = null;
  const out: RingItem[] = [];
  scope.postMessage({ type: "ready" });
  while (!stopping()) {
    const room = MAX_IN_FLIGHT - inFlight.size;
    if (room === 0) {
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    const n = ring.popBatch(room, out);
    if (n === 0) {
      await ring.waitForItems(100);
      continue;
    }
    const ids: string[] = [];
    for (let k = 0; k < n; k++) ids.push(out[k].id);
    // Tell the pool first: should this thread die, it re-queues exactly what it had claimed.
    scope.postMessage({ type: "claimed", ids });
    for (let k = 0; k < n; k++) {
      const { id, flags } = out[k];
      const p: Promise<void> = processItem(init, couriers, batcher, id, flags).then((r) => {
        inFlight.delete(p);
        scope.postMessage({ type: "result", ...r });
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
  scope.postMessage({ type: "stopped" });
}

// Worker entry: the only top-level statement registers the message handler (the module is loaded only as a Worker).
const scope = globalThis as unknown as WorkerScope;
let stopRequested = false;
let sab: SharedArrayBuffer | null = null;
scope.onmessage = (e: MessageEvent) => {
  const msg = e.data as PoolToWorker;
  if (msg.type === "init") {
    sab = msg.sab;
    void run(scope, msg, () => stopRequested);
  } else if (msg.type === "stop") {
    stopRequested = true;
    // End this thread's waitForItems now; other workers take it as a spurious wake-up and sleep again.
    if (sab !== null) new Ring(sab).notify();
  }
};
