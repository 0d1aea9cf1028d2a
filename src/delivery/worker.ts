/**
 * The delivery worker as a library (run in a Web Worker whose entry module, app/delivery-worker.ts, picks the
 * runtime's Dialer and calls runDeliveryWorker). It pops ring tokens in batches, opens each item through the
 * queue (queue/ ItemStore: segment or file is the queue's business), hands the pending recipients to the courier
 * for their route kind (services.ts, built once per worker), lets the item record each outcome as it is reported,
 * and reports the item's result to the pool. Up to MAX_IN_FLIGHT items are delivered concurrently, so one slow
 * remote destination does not stop the others, and local fsyncs share group-commit rounds.
 *
 * What is retried when, what a DSN reports, and when an outcome must be durable are the queue's decisions
 * (queue/item-handle.ts, queue/notices.ts); the courier's `exactlyOnce` flag is what they need from delivery.
 */
import { Ring } from "../ring/index.ts";
import type { RingItem } from "../ring/index.ts";
import { setImmediate } from "node:timers";
import { ItemHandle, ItemStore, loadSyncFs, SyncBatcher, tokenId } from "../queue/index.ts";
import { localOutcome } from "../mail/index.ts";
import type { Courier } from "../mail/index.ts";
import { WorkerServices } from "./services.ts";
import type { WorkerDeps } from "./services.ts";
import { FLAG_RECHECK, MAX_IN_FLIGHT } from "./worker-protocol.ts";
import type { DeliveryResult, PoolToWorker, WorkerInit, WorkerToPool } from "./worker-protocol.ts";

export type { WorkerDeps } from "./services.ts";

/** After the ring empties, poll it this long before parking on it. */
const LINGER_MS = 50;
const LINGER_POLL_MS = 1;

/** Deliver one item's pending recipients; the item records the outcomes. Never throws. */
export async function processItem(
  services: WorkerServices,
  store: ItemStore,
  token: string,
  flags: number,
): Promise<DeliveryResult> {
  let opened = store.open(token, (flags & FLAG_RECHECK) !== 0);
  if (opened instanceof Promise) opened = await opened;
  if (!(opened instanceof ItemHandle)) return opened;
  const item = opened;
  const recipients = item.envelope.recipients;
  const groups = new Map<Courier, number[]>();
  let count = 0;
  let exactlyOnce = true;
  for (let i = 0; i < recipients.length; i++) {
    const courier = services.courier(recipients[i].route.kind);
    if (courier === undefined) continue;
    // Over every recipient, delivered before or not: a remote copy made earlier must not come back either.
    if (!courier.exactlyOnce) exactlyOnce = false;
    if (!item.isPending(i)) continue;
    const g = groups.get(courier);
    if (g) g.push(i);
    else groups.set(courier, [i]);
    count++;
  }
  const starting = item.begin(count, groups.size, exactlyOnce);
  if (starting !== null) {
    const refused = await starting;
    if (refused !== null) return refused;
  }
  await Promise.all(
    [...groups].map(async ([courier, indices]) => {
      const rcpts = indices.map((i) => recipients[i]);
      try {
        await courier.deliver(item.message, rcpts, {
          recheck: item.recheck,
          report: (ks, got) =>
            item.record(isIdentity(ks, indices.length) ? indices : ks.map((k) => indices[k]), got, courier.exactlyOnce, courier.name),
        });
      } catch (err) {
        const left = item.unreported(indices);
        const o = localOutcome("deferred", 451, "4.3.0", `${courier.name} courier error: ${String(err)}`);
        await item.record(left, left.map(() => o), courier.exactlyOnce, courier.name);
      }
    }),
  );
  return item.finish();
}

/** ks is 0, 1, …, n-1 (a report of the whole group in order: the common case, mapped without an array). */
function isIdentity(ks: number[], n: number): boolean {
  if (ks.length !== n) return false;
  for (let j = 0; j < n; j++) if (ks[j] !== j) return false;
  return true;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: WorkerToPool): void;
}

/**
 * The worker's main loop: claim up to the free in-flight room, from this worker's own ring first (the mailboxes it
 * owns, pool.ts), then from the shared ring; deliver; report.
 */
async function run(
  scope: WorkerScope,
  init: WorkerInit,
  deps: WorkerDeps,
  stopping: () => boolean,
  onServices: (s: WorkerServices) => void,
): Promise<void> {
  const own = new Ring(init.ownSab);
  const ring = new Ring(init.sab);
  const batcher = new SyncBatcher();
  batcher.syncfs = await loadSyncFs();
  const store = new ItemStore(init.queueDir, batcher, {
    retryIntervalsMs: init.retryIntervalsMs,
    maxAgeMs: init.maxAgeMs,
    delayWarningMs: init.delayWarningMs,
  });
  const services = new WorkerServices(init, batcher, deps);
  onServices(services);
  const inFlight = new Set<Promise<void>>();
  let wake: (() => void) | null = null;
  const out: RingItem[] = [];
  const more: RingItem[] = [];
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
    let n = own.popBatch(room, out);
    if (n < room) {
      const m = ring.popBatch(room - n, more);
      for (let k = 0; k < m; k++) out[n + k] = more[k];
      n += m;
    }
    if (n === 0) {
      // Linger before parking: while this worker polls, producers see no sleeper and skip the wake-up syscall,
      // which cost the event loop about one futex wake per message under a steady trickle (11.7% of its samples
      // with a connection per message). A poll adds at most LINGER_POLL_MS to an item's wait.
      const now = Date.now();
      if (idleSince === 0) idleSince = now;
      if (now - idleSince < LINGER_MS) await new Promise<void>((resolve) => setTimeout(resolve, LINGER_POLL_MS));
      else await own.waitForItems(100, ring);
      continue;
    }
    idleSince = 0;
    const ids: string[] = [];
    for (let k = 0; k < n; k++) ids.push(tokenId(out[k].id));
    // Tell the pool first: should this thread die, it re-queues exactly what it had claimed.
    scope.postMessage({ type: "claimed", ids });
    for (let k = 0; k < n; k++) {
      const { id, flags } = out[k];
      const p: Promise<void> = processItem(services, store, id, flags).then((r) => {
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
  store.close();
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
  let ownSab: SharedArrayBuffer | null = null;
  let services: WorkerServices | null = null;
  /** Settings that arrived before the services were built (a SIGHUP during start-up). */
  let pendingRemote: PoolToWorker | null = null;
  scope.onmessage = (e: MessageEvent) => {
    const msg = e.data as PoolToWorker;
    if (msg.type === "init") {
      ownSab = msg.ownSab;
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
      // End this thread's waitForItems now (it parks on its own ring).
      if (ownSab !== null) new Ring(ownSab).notify();
    }
  };
}
