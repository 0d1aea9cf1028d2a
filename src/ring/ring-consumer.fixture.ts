/**
 * Worker entry for ring.test.ts: consumes ids until it pops an item with flags 1 (a stop sentinel, one per consumer), then posts
 * every id it received. Registering the handler is the module's purpose, as for any Worker entry.
 */
import { Ring } from "./ring.ts";
import type { RingItem } from "./ring.ts";

declare const self: { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };

self.onmessage = async (e: MessageEvent) => {
  const ring = new Ring(e.data.sab as SharedArrayBuffer);
  const batch = e.data.batch as number;
  const ids: string[] = [];
  const out: RingItem[] = [];
  for (;;) {
    const n = ring.popBatch(batch, out);
    if (n === 0) {
      await ring.waitForItems(20);
      continue;
    }
    let sentinels = 0;
    for (let i = 0; i < n; i++) {
      if (out[i].flags === 1) sentinels++;
      else ids.push(out[i].id);
    }
    // A batch may hold the other consumer's sentinel too: hand the extras back.
    for (let i = 1; i < sentinels; i++) while (!ring.push("", 1)) await ring.waitForItems(1);
    if (sentinels > 0) {
      ring.notify();
      break;
    }
  }
  self.postMessage(ids);
};
