/**
 * The delivery worker's entry module on Deno (and Node): as delivery-worker.ts, with the node:net/node:tls
 * Dialer. A separate entry because a worker imports its Dialer statically and the Bun adapter loads bun:ffi.
 */
import { runDeliveryWorker } from "../delivery/index.ts";
import { createDenoDialer } from "../transport/deno/index.ts";

runDeliveryWorker({ dialer: createDenoDialer() });
