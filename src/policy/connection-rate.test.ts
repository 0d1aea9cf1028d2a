import { describe, expect, test } from "vitest";
import { ConnectionRateLimiter } from "./connection-rate.ts";

describe("ConnectionRateLimiter (CONTRACT max_connection_rate_per_ip)", () => {
  test("0 means no limit and keeps no state", () => {
    const l = new ConnectionRateLimiter(0);
    for (let i = 0; i < 10_000; i++) expect(l.allow(`10.0.${i >> 8}.${i & 255}`, 0)).toBe(true);
    expect(l.size).toBe(0);
  });
  test("rate per minute: a burst of `rate`, then one every 60/rate s; refusals take nothing", () => {
    const l = new ConnectionRateLimiter(6);
    const t0 = 1_000_000;
    for (let i = 0; i < 6; i++) expect(l.allow("192.0.2.1", t0)).toBe(true);
    expect(l.allow("192.0.2.1", t0)).toBe(false);
    expect(l.allow("192.0.2.1", t0 + 9_999)).toBe(false);
    expect(l.allow("192.0.2.1", t0 + 10_000)).toBe(true); // 60 s / 6
    expect(l.allow("192.0.2.1", t0 + 10_001)).toBe(false);
    // Other addresses are not affected.
    expect(l.allow("192.0.2.2", t0)).toBe(true);
    // A minute later the bucket is full again, not fuller.
    for (let i = 0; i < 6; i++) expect(l.allow("192.0.2.1", t0 + 200_000)).toBe(true);
    expect(l.allow("192.0.2.1", t0 + 200_000)).toBe(false);
  });
  test("memory is bounded: the least recently seen address is forgotten first", () => {
    const l = new ConnectionRateLimiter(1, 100);
    expect(l.allow("hot", 0)).toBe(true);
    for (let i = 0; i < 98; i++) l.allow(`a${i}`, 0);
    expect(l.allow("hot", 1)).toBe(false); // re-touched: most recently used
    for (let i = 0; i < 1000; i++) l.allow(`b${i}`, 2);
    expect(l.size).toBe(100);
    // "hot" was pushed out by 1000 newer addresses: forgotten = a full bucket.
    expect(l.allow("hot", 3)).toBe(true);
  });
  test("setRate (SIGHUP) applies at once", () => {
    const l = new ConnectionRateLimiter(100);
    for (let i = 0; i < 5; i++) l.allow("x", 0);
    l.setRate(2);
    expect(l.allow("x", 0)).toBe(true);
    expect(l.allow("x", 0)).toBe(true);
    expect(l.allow("x", 0)).toBe(false);
    l.setRate(0);
    expect(l.allow("x", 0)).toBe(true);
  });
});
