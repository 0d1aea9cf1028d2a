/**
 * The messages between the pool (main thread) and a delivery worker, and the ring slot flags.
 */
import type { LmtpSettings } from "./lmtp/index.ts";
import type { RemoteSettings } from "./remote/index.ts";
import type { Route } from "../mail/index.ts";
import type { DsnActionName, ItemResult } from "../queue/index.ts";

/** Ring slot flag: the item may have been delivered partly by an attempt whose outcome was not recorded. */
export const FLAG_RECHECK = 1;
export const MAX_IN_FLIGHT = 64;

/** Route kinds the workers have a courier for (services.ts). */
export const COURIER_KINDS: ReadonlyArray<Route["kind"]> = ["local", "remote"];

/** What a DSN reports for one recipient (RFC 3464 §2.3.3 Action). */
export type DsnAction = DsnActionName;

export interface WorkerInit {
  type: "init";
  /** The shared ring. */
  sab: SharedArrayBuffer;
  /** This worker slot's own ring (mailbox affinity, pool.ts): served first. */
  ownSab: SharedArrayBuffer;
  queueDir: string;
  mailDir: string;
  hostname: string;
  retryIntervalsMs: number[];
  /** queue.max_age: a recipient still deferred this long after arrival fails (and bounces). */
  maxAgeMs: number;
  /** queue.delay_warning: a "delayed" DSN once a recipient has waited this long; 0 = never. */
  delayWarningMs: number;
  remote: RemoteSettings;
  /** local.delivery = "lmtp": local recipients go to this LMTP server instead of the Maildirs under mailDir. */
  lmtp?: LmtpSettings;
}

/** What an attempt on one item came to: the queue's ItemResult (queue/item-handle.ts). */
export type DeliveryResult = ItemResult;

export type WorkerToPool =
  | { type: "ready" }
  | { type: "claimed"; ids: string[] }
  /** The outcomes of the items finished in one turn of the worker's loop. */
  | { type: "results"; results: DeliveryResult[] }
  | { type: "stopped" };

/** "remote": new relay settings after SIGHUP (routes, smart host, DNS servers); the worker swaps its courier. */
export type PoolToWorker = WorkerInit | { type: "stop" } | { type: "remote"; remote: RemoteSettings };

