/**
 * The messages between the pool (main thread) and a delivery worker, and the ring slot flags.
 */
import type { RemoteSettings } from "./remote/index.ts";
import type { Outcome, Route } from "../mail/index.ts";

/** Ring slot flag: the item may have been delivered partly by an attempt whose outcome was not recorded. */
export const FLAG_RECHECK = 1;
export const MAX_IN_FLIGHT = 64;

/** Route kinds the workers have a courier for (buildCouriers in worker.ts). */
export const COURIER_KINDS: ReadonlyArray<Route["kind"]> = ["local", "remote"];

/** What a DSN reports for one recipient (RFC 3464 §2.3.3 Action). */
export type DsnAction = "failed" | "delayed" | "delivered" | "relayed";

export interface WorkerInit {
  type: "init";
  sab: SharedArrayBuffer;
  queueDir: string;
  mailDir: string;
  hostname: string;
  retryIntervalsMs: number[];
  /** queue.max_age: a recipient still deferred this long after arrival fails (and bounces). */
  maxAgeMs: number;
  /** queue.delay_warning: a "delayed" DSN once a recipient has waited this long; 0 = never. */
  delayWarningMs: number;
  remote: RemoteSettings;
}

export interface DeliveryResult {
  id: string;
  /** courier: the route kind that delivered ("local" | "remote"); ms: from the start of this attempt. */
  outcomes: Array<{ index: number; outcome: Outcome; address: string; courier: string; ms: number }>;
  /** Every recipient is delivered or failed. */
  done: boolean;
  /** Earliest next attempt (ms since the epoch) among deferred recipients; 0 when none. */
  nextAttempt: number;
  /** Recipients to report in a DSN now (RFC 3461 NOTIFY); recorded as reported in the state log already. */
  notices: Array<{ index: number; action: DsnAction }>;
  /**
   * The item is finished but left in the spool for the pool's onFinished (a DSN to build from it); the pool deletes
   * it afterwards.
   */
  kept: boolean;
  /** Set when the item could not be processed (gone, corrupt, spool write failed). */
  error?: string;
  /** The item's segment record is no longer needed (done, deleted, or written out as <id>.msg): queue/segment.ts. */
  released?: boolean;
}

export type WorkerToPool =
  | { type: "ready" }
  | { type: "claimed"; ids: string[] }
  /** The outcomes of the items finished in one turn of the worker's loop. */
  | { type: "results"; results: DeliveryResult[] }
  | { type: "stopped" };

/** "remote": new relay settings after SIGHUP (routes, smart host, DNS servers); the worker swaps its courier. */
export type PoolToWorker = WorkerInit | { type: "stop" } | { type: "remote"; remote: RemoteSettings };

