/**
 * CONTRACT [limits] max_connection_rate_per_ip: connections per minute from one address, over all listeners; over
 * it the connection gets 421 4.7.0 at connect (Postfix anvil's smtpd_client_connection_rate_limit does the same).
 *
 * A token bucket per address: `rate` tokens, refilled continuously at rate per minute, one taken per accepted
 * connection. So a client may open `rate` connections at once, then one every 60/rate seconds; a refused attempt
 * takes nothing. Pure: the caller passes the time.
 *
 * Memory is bounded: at most MAX_TRACKED addresses are held (about 100 bytes each, ~6.5 MB in all). The Map is kept
 * in least-recently-used order (an address is re-inserted when it connects); when full, the least recently seen
 * address is dropped — a full bucket is the same as no entry, and an address that has not connected for a while
 * has refilled. Under a flood from more than MAX_TRACKED distinct addresses the oldest are forgotten early; each
 * of them can then open at most `rate` more connections per turn of the table, which max_connections still caps.
 */

/** Addresses tracked at most (see the memory bound above). */
export const MAX_TRACKED = 65_536;
const MINUTE_MS = 60_000;

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, ms. */
  at: number;
}

export class ConnectionRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /** `rate`: connections per minute per address; 0 = no limit. */
  constructor(
    private rate: number,
    private readonly maxTracked = MAX_TRACKED,
  ) {}

  /** SIGHUP: a new rate applies from now; buckets above it are trimmed. */
  setRate(rate: number): void {
    this.rate = rate;
    if (rate === 0) this.buckets.clear();
    else for (const b of this.buckets.values()) b.tokens = Math.min(b.tokens, rate);
  }

  /** Addresses currently tracked (tests, metrics). */
  get size(): number {
    return this.buckets.size;
  }

  /** May `address` open a connection at `now`? Takes a token when it may. */
  allow(address: string, now: number): boolean {
    const rate = this.rate;
    if (rate === 0) return true;
    let b = this.buckets.get(address);
    if (b === undefined) {
      b = { tokens: rate, at: now };
    } else {
      this.buckets.delete(address); // re-inserted below: most recently used last
      const elapsed = Math.max(0, now - b.at);
      b.tokens = Math.min(rate, b.tokens + (elapsed * rate) / MINUTE_MS);
      b.at = now;
    }
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    this.buckets.set(address, b);
    if (this.buckets.size > this.maxTracked) {
      // The first key is the least recently used.
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    return ok;
  }
}
