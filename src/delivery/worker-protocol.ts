/**
 * The messages between the pool (main thread) and a delivery worker, and the ring slot flags. Kept apart from
 * worker.ts because that module is a Worker entry: importing it would register its handler.
 */
import type { Outcome, Route } from "./types.ts";

/** Ring slot flag: the item may have been delivered partly by an attempt whose outcome was not recorded. */
export const FLAG_RECHECK = 1;
export const MAX_IN_FLIGHT = 64;

/** Route kinds the workers have a courier for (buildCouriers in worker.ts); remote joins when its courier does. */
export const COURIER_KINDS: ReadonlyArray<Route["kind"]> = ["local"];

export interface WorkerInit {
  type: "init";
  sab: SharedArrayBuffer;
  queueDir: string;
  mailDir: string;
  hostname: string;
  retryIntervalsMs: number[];
}

export interface DeliveryResult {
  id: string;
  outcomes: Array<{ index: number; outcome: Outcome }>;
  /** Every recipient is delivered or failed. */
  done: boolean;
  /** Earliest next attempt (ms since the epoch) among deferred recipients; 0 when none. */
  nextAttempt: number;
  /** Set when the item could not be processed (gone, corrupt, spool write failed). */
  error?: string;
}

export type WorkerToPool =
  | { type: "ready" }
  | { type: "claimed"; ids: string[] }
  | ({ type: "result" } & DeliveryResult)
  | { type: "stopped" };

export type PoolToWorker = WorkerInit | { type: "stop" };

