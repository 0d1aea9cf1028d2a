/**
 * Answers kept for their TTL, positive and negative (RFC 2308 §5), in a bounded LRU map: a Map keeps insertion
 * order, so a hit is moved to the end and the first key is the least recently used one.
 */

export interface CacheEntry<V> {
  value: V;
  /** Absolute expiry, ms since the epoch (the clock the cache was given). */
  expires: number;
}

export class TtlCache<V> {
  private readonly map = new Map<string, CacheEntry<V>>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.map.size;
  }

  /** The live entry for `key` (an expired one is dropped), marked most recently used. */
  get(key: string): CacheEntry<V> | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    this.map.delete(key);
    if (e.expires <= this.now()) return undefined;
    this.map.set(key, e);
    return e;
  }

  /** Keeps `value` for `ttlSeconds` (0 or less: not kept), evicting the least recently used entry when full. */
  set(key: string, value: V, ttlSeconds: number): void {
    this.map.delete(key);
    if (ttlSeconds <= 0 || this.maxEntries <= 0) return;
    while (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, { value, expires: this.now() + ttlSeconds * 1000 });
  }

  clear(): void {
    this.map.clear();
  }
}
