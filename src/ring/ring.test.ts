import { describe, expect, test } from "vitest";
import { createRing, MAX_ID_LENGTH, Ring } from "./index.ts";
import type { RingItem } from "./index.ts";

describe("Ring", () => {
  test("push/popBatch keep FIFO order, ids and flags", () => {
    const ring = new Ring(createRing(8));
    expect(ring.push("A1", 0)).toBe(true);
    expect(ring.push("B22", 3)).toBe(true);
    expect(ring.push("01ABCDEFGHJKMNPQRSTVWXYZ", 255)).toBe(true);
    expect(ring.depth).toBe(3);
    const out: RingItem[] = [];
    expect(ring.popBatch(64, out)).toBe(3);
    expect(out.slice(0, 3)).toEqual([
      { id: "A1", flags: 0 },
      { id: "B22", flags: 3 },
      { id: "01ABCDEFGHJKMNPQRSTVWXYZ", flags: 255 },
    ]);
    expect(ring.depth).toBe(0);
    expect(ring.popBatch(64, out)).toBe(0);
  });

  test("push returns false when full and succeeds again after a pop, across many wraparounds", () => {
    const ring = new Ring(createRing(4));
    const out: RingItem[] = [];
    let next = 0;
    let expected = 0;
    for (let lap = 0; lap < 1000; lap++) {
      while (ring.push(String(next), 0)) next++;
      expect(ring.depth).toBe(4);
      expect(ring.push("X", 0)).toBe(false);
      const n = ring.popBatch(3, out);
      expect(n).toBe(3);
      for (let i = 0; i < n; i++) expect(out[i].id).toBe(String(expected++));
    }
  });

  test("createRing rejects a capacity that is not a power of 2", () => {
    expect(() => createRing(100)).toThrow(RangeError);
  });

  test("rejects ids longer than a slot holds", () => {
    const ring = new Ring(createRing(4));
    expect(() => ring.push("X".repeat(MAX_ID_LENGTH + 1), 0)).toThrow(RangeError);
    expect(ring.push("X".repeat(MAX_ID_LENGTH), 0)).toBe(true);
  });

  test("waitForItems resolves on notify and on timeout", async () => {
    const ring = new Ring(createRing(4));
    const t0 = Date.now();
    await ring.waitForItems(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(20);
    const waiting = ring.waitForItems(10_000);
    setTimeout(() => {
      ring.push("Z", 0);
      ring.notify();
    }, 10);
    const t1 = Date.now();
    await waiting;
    expect(Date.now() - t1).toBeLessThan(5_000);
  });

  test("2 Worker threads consume 100k ids: every id exactly once", async () => {
    const sab = createRing(1024);
    const ring = new Ring(sab);
    const url = new URL("./ring-consumer.fixture.ts", import.meta.url).href;
    const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
    const results = workers.map(
      (w) =>
        new Promise<string[]>((resolve, reject) => {
          w.onmessage = (e) => resolve(e.data as string[]);
          w.onerror = (e) => reject(new Error(String((e as ErrorEvent).message)));
        }),
    );
    for (const w of workers) w.postMessage({ sab, batch: 64 });
    const total = 100_000;
    const t0 = performance.now();
    for (let i = 0; i < total; ) {
      if (ring.push(`ID${i}`, 0)) {
        i++;
        if ((i & 255) === 0) ring.notify();
      } else {
        ring.notify();
        await new Promise((r) => setImmediate(r));
      }
    }
    for (let s = 0; s < 2; ) {
      if (ring.push("", 1)) s++;
      else await new Promise((r) => setImmediate(r));
    }
    ring.notify();
    const got = await Promise.all(results);
    const ms = performance.now() - t0;
    for (const w of workers) w.terminate();
    console.log(`ring: 100k ids through 2 workers in ${ms.toFixed(0)} ms (${got[0].length} / ${got[1].length})`);
    const seen = new Uint8Array(total);
    for (const list of got) {
      for (const id of list) {
        const i = Number(id.slice(2));
        expect(seen[i]).toBe(0);
        seen[i] = 1;
      }
    }
    expect(got[0].length + got[1].length).toBe(total);
  });
});
