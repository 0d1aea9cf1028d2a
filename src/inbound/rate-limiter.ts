/**
 * Rate limits as GCRA (the generic cell rate algorithm, ITU-T I.371; a token bucket stored as one number): for
 * `count` messages per `windowMs`, each message moves the key's "theoretical arrival time" (TAT) on by
 * windowMs / count, and a message is refused when that would put the TAT more than windowMs ahead of now. So a
 * fresh key may send `count` at once, then one every windowMs / count; exactly `count` pass in any window.
 *
 * Memory is bounded whatever the number of keys: one Map entry (key string → TAT) per key value seen, at most
 * `maxKeys` of them, kept in least-recently-used order. An entry whose TAT is in the past is an idle key whose
 * bucket is full again, which is the same as no entry, so idle keys are dropped first; only when the oldest
 * entries are all busy is the least recently used one dropped (it then starts again with a full bucket).
 */

export interface RateLimitSpec {
  count: number;
  windowMs: number;
}

/**
 * Default cap on key values per limit. Measured (test/inbound/memory.test.ts, Bun): 113 bytes of heap per IPv4 key,
 * so about 11 MB per limit at the cap; the test holds it under 160 bytes per key (16 MB).
 */
export const RATE_LIMIT_MAX_KEYS = 100_000;
/** How many of the oldest entries are looked at for an idle one before the oldest busy one is dropped. */
const EVICT_SCAN = 16;

export class RateLimiter {
  private readonly tat = new Map<string, number>();
  private readonly interval: number;

  constructor(
    readonly spec: RateLimitSpec,
    private readonly maxKeys = RATE_LIMIT_MAX_KEYS,
  ) {
    this.interval = spec.windowMs / spec.count;
  }

  get size(): number {
    return this.tat.size;
  }

  /** The TAT after one more message from `key` now, or -1 when that message is over the rate (nothing changes). */
  check(key: string, now: number): number {
    const prev = this.tat.get(key);
    const next = (prev === undefined || prev < now ? now : prev) + this.interval;
    // A microsecond of slack: windowMs / count is not exact in floating point, and count steps must reach windowMs.
    return next - now > this.spec.windowMs + 0.001 ? -1 : next;
  }

  /** Records a message that check() allowed (check every limit first, then commit, so a refusal costs none). */
  commit(key: string, tat: number): void {
    const t = this.tat;
    // Delete first so the key moves to the young end (Map iteration is insertion order).
    if (!t.delete(key) && t.size >= this.maxKeys) this.evict(tat - this.interval);
    t.set(key, tat);
  }

  /** check + commit: true when the message is within the rate. */
  take(key: string, now: number): boolean {
    const next = this.check(key, now);
    if (next < 0) return false;
    this.commit(key, next);
    return true;
  }

  /** Frees one slot: the first idle key among the oldest EVICT_SCAN, else the oldest key. */
  private evict(now: number): void {
    let oldest: string | undefined;
    let n = 0;
    for (const [k, v] of this.tat) {
      oldest ??= k;
      if (v <= now) {
        this.tat.delete(k);
        return;
      }
      if (++n >= EVICT_SCAN) break;
    }
    if (oldest !== undefined) this.tat.delete(oldest);
  }
}
