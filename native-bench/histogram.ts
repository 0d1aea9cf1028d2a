/**
 * Latency histogram in microseconds with ~1.6 % resolution (log-linear buckets, HdrHistogram's layout with 6
 * sub-bucket bits): recording is two integer ops and an increment, memory is fixed whatever the run length.
 */

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // 64
/** Values are clamped to 2^31 µs (about 36 minutes). */
const MAX_US = 2 ** 31 - 1;
const BUCKETS = (31 - SUB_BITS) * SUB + 2 * SUB;

export interface Percentiles {
  count: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function indexOf(us: number): number {
  if (us < 2 * SUB) return us;
  const shift = 31 - Math.clz32(us) - SUB_BITS;
  return shift * SUB + (us >>> shift);
}

/** The middle of bucket idx, in µs. */
function valueAt(idx: number): number {
  if (idx < 2 * SUB) return idx;
  const shift = Math.floor(idx / SUB) - 1;
  const lower = (idx - shift * SUB) * 2 ** shift;
  return lower + 2 ** (shift - 1);
}

export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private n = 0;
  private sumUs = 0;
  private maxUs = 0;

  /** Records one latency given in milliseconds (performance.now() differences). */
  record(ms: number): void {
    let us = Math.round(ms * 1000);
    if (us < 0) us = 0;
    else if (us > MAX_US) us = MAX_US;
    this.counts[indexOf(us)]!++;
    this.n++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  get count(): number {
    return this.n;
  }

  /** The value (ms) at or below which fraction q of the recordings lie. */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueAt(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  summary(): Percentiles {
    const r = (v: number): number => Math.round(v * 1000) / 1000;
    return {
      count: this.n,
      p50: r(this.quantile(0.5)),
      p90: r(this.quantile(0.9)),
      p99: r(this.quantile(0.99)),
      max: r(this.maxUs / 1000),
      mean: r(this.n === 0 ? 0 : this.sumUs / this.n / 1000),
    };
  }
}
