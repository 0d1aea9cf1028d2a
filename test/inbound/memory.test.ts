/**
 * Bounded memory of the defences (issue 12): 10,000 distinct client addresses (127.x.y.z) through the greylisting
 * and rate-limit stages in the in-process session tier, then the caps (100,000 keys per limit, 100,000 triples)
 * under more keys than that. Heap is measured after a forced full GC (Bun.gc(true), tests only).
 *
 * The bound stated in src/inbound (rate-limiter.ts, greylist.ts): at most 160 bytes per rate-limit key and 256
 * bytes per greylisting triple of typical length, so at most 16 MB per limit and 26 MB for greylisting at the caps.
 */
import { describe, expect, test } from "vitest";
import {
  GREYLIST_MAX_ENTRIES,
  GreylistStore,
  greylistStage,
  RATE_LIMIT_MAX_KEYS,
  RateLimiter,
  rateLimitStage,
  tripleKey,
  type DefenceDeps,
  type RateLimitEntry,
} from "../../src/inbound/index.ts";
import { DnsLists } from "../../src/inbound/index.ts";
import { ManualClock, RecordingLog, sessionTier } from "../session/harness.ts";

declare const Bun: { gc(force: boolean): void };

const RATE_KEY_BYTES = 160;
const TRIPLE_BYTES = 256;

function heap(): number {
  Bun.gc(true);
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

const addr = (i: number): string => `127.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 1}`;

describe("memory of the defences", () => {
  test("10,000 client addresses through the greylisting and rate-limit stages stay within the stated bound", async () => {
    const clock = new ManualClock(false);
    const log = new RecordingLog();
    const deps: DefenceDeps = {
      settings: () => ({ dnsbl: [], dnswl: [], pregreetMs: 0, greylist: true, greylistDelayMs: 300_000 }),
      trusted: () => false,
      lists: new DnsLists({ lookup: { lookupA: () => Promise.reject(new Error("unused")) }, sleep: (ms) => clock.delay(ms), log }),
      report: () => {},
    };
    const store = new GreylistStore();
    const limits: RateLimitEntry[] = [{ key: "ip", rate: "60/1m", limiter: new RateLimiter({ count: 60, windowMs: 60_000 }) }];
    const stages = [greylistStage(deps, store, () => clock.now()), rateLimitStage(() => limits, () => {}, () => clock.now())];
    // Warm up the code paths (JIT, session tier), so the measurement sees state, not code.
    for (let i = 0; i < 200; i++) {
      const t = sessionTier({ stages, remoteAddress: `10.0.${i >> 8}.${i & 255}` });
      t.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n");
    }
    const before = heap();
    const n = 10_000;
    let deferred = 0;
    for (let i = 0; i < n; i++) {
      const t = sessionTier({ stages, remoteAddress: addr(i) });
      t.send(`EHLO c.test\r\nMAIL FROM:<sender${i}@remote.test>\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n`);
      if (t.output.includes("451 4.7.1")) deferred++;
      t.hangUp();
      await t.settle();
    }
    const grown = heap() - before;
    expect(deferred).toBe(n); // every triple was new
    expect(limits[0]!.limiter.size).toBe(n + 200);
    expect(store.size).toBe(n + 1); // the warm-up clients share one /24, sender and recipient: one triple
    const perClient = grown / n;
    console.log(`defence state: ${n} clients → heap +${(grown / 1024).toFixed(0)} KiB, ${perClient.toFixed(0)} bytes per client (one rate-limit key + one greylisting triple)`);
    expect(perClient).toBeLessThan(RATE_KEY_BYTES + TRIPLE_BYTES);
  }, 60_000);

  test("the caps hold: 150,000 keys leave 100,000 in each structure, within the stated bytes", () => {
    const before = heap();
    const limiter = new RateLimiter({ count: 60, windowMs: 60_000 });
    const extra = 50_000;
    for (let i = 0; i < RATE_LIMIT_MAX_KEYS + extra; i++) limiter.take(addr(i), 1_000_000 + i);
    const afterLimiter = heap();
    expect(limiter.size).toBe(RATE_LIMIT_MAX_KEYS);
    const perKey = (afterLimiter - before) / limiter.size;

    const store = new GreylistStore();
    for (let i = 0; i < GREYLIST_MAX_ENTRIES + extra; i++) {
      store.attempt(tripleKey(`127.${(i >> 16) & 255}.${(i >> 8) & 255}.0/24`, `sender${i}@remote.example`, "alice@example.test"), 1_000_000 + i, 300_000);
    }
    const afterStore = heap();
    expect(store.size).toBeLessThanOrEqual(GREYLIST_MAX_ENTRIES);
    const perTriple = (afterStore - afterLimiter) / store.size;
    console.log(
      `rate limiter: ${limiter.size} keys in ${((afterLimiter - before) / 1048576).toFixed(1)} MiB (${perKey.toFixed(0)} B/key); ` +
        `greylist: ${store.size} triples in ${((afterStore - afterLimiter) / 1048576).toFixed(1)} MiB (${perTriple.toFixed(0)} B/triple)`,
    );
    expect(perKey).toBeLessThan(RATE_KEY_BYTES);
    expect(perTriple).toBeLessThan(TRIPLE_BYTES);
  }, 60_000);
});
