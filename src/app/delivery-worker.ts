/**
 * The delivery worker's entry module (loaded only as a Worker by the DeliveryPool; app/server.ts hands the pool
 * its URL). It picks the runtime's outbound Dialer and serves the pool.
 *
 * The adapter is imported statically: with `await import()` the module body runs after the pool's init message
 * has already been dispatched to a scope without a handler, and Bun drops it (measured: the pool never starts).
 */
import { runDeliveryWorker } from "../delivery/index.ts";
import { createBunDialer } from "../transport/bun/index.ts";

runDeliveryWorker({ dialer: createBunDialer() });
