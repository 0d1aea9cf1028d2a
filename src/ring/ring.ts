/**
 * A bounded multi-producer multi-consumer ring over a SharedArrayBuffer (Dmitry Vyukov's bounded MPMC queue):
 * each slot has a sequence number; a producer may fill slot pos&mask when its sequence equals pos, a consumer
 * may empty it when it equals pos+1, and the consumer hands it back for the next lap by setting pos+capacity.
 * Positions are int32 and wrap; every comparison is on the wrapped difference `(a - b) | 0`, valid while fewer
 * than 2^31 operations separate two readers' views. Atomics only, no locks.
 *
 * Consumers claim a run of ready slots with one CAS (popBatch): one claim per item costs ~6× the throughput.
 *
 * Layout (Int32 indices of the header; the two positions sit on separate 64-byte cache lines):
 *   [0] enqueue position   [16] dequeue position   [32] capacity   [48] wake-up counter   [52] sleepers
 *   then capacity × Int32 sequence numbers, then capacity × 64-byte slots: [length][flags][up to 62 ASCII bytes]
 *   (a queue id, or a segment token of about 40: queue/segment.ts).
 */

const HEADER_INTS = 64;
const ENQ = 0;
const DEQ = 16;
const CAP = 32;
const SIG = 48;
/** Consumers inside waitForItems: notify() skips the futex syscall when nobody sleeps (it was 1 per message). */
const SLEEP = 52;
export const SLOT_BYTES = 64;
export const MAX_ID_LENGTH = SLOT_BYTES - 2;

/** ES2024 Atomics.waitAsync (Bun, Deno, Node ≥ 16); typed here because the project's lib is ES2023. */
type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> };

export interface RingItem {
  id: string;
  flags: number;
}

export function createRing(capacity: number): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > 1 << 24 || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError("ring capacity must be a power of 2 between 2 and 2^24");
  }
  const sab = new SharedArrayBuffer(HEADER_INTS * 4 + capacity * 4 + capacity * SLOT_BYTES);
  const h = new Int32Array(sab, 0, HEADER_INTS);
  h[CAP] = capacity;
  const seq = new Int32Array(sab, HEADER_INTS * 4, capacity);
  for (let i = 0; i < capacity; i++) seq[i] = i;
  return sab;
}

export class Ring {
  private readonly h: Int32Array;
  private readonly seq: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;
  readonly capacity: number;

  constructor(sab: SharedArrayBuffer) {
    this.h = new Int32Array(sab, 0, HEADER_INTS);
    this.capacity = this.h[CAP];
    this.mask = this.capacity - 1;
    this.seq = new Int32Array(sab, HEADER_INTS * 4, this.capacity);
    this.data = new Uint8Array(sab, HEADER_INTS * 4 + this.capacity * 4, this.capacity * SLOT_BYTES);
  }

  /** Enqueue; false when the ring is full. `id` must be ASCII of at most MAX_ID_LENGTH (62) characters, `flags` 0..255. */
  push(id: string, flags: number): boolean {
    const len = id.length;
    if (len > MAX_ID_LENGTH) throw new RangeError(`ring id longer than ${MAX_ID_LENGTH}: ${id}`);
    const { h, seq, mask } = this;
    let pos = Atomics.load(h, ENQ);
    let idx: number;
    for (;;) {
      idx = pos & mask;
      const dif = (Atomics.load(seq, idx) - pos) | 0;
      if (dif === 0) {
        const seen = Atomics.compareExchange(h, ENQ, pos, (pos + 1) | 0);
        if (seen === pos) break;
        pos = seen;
      } else if (dif < 0) {
        return false; // the slot still holds last lap's item: full
      } else {
        pos = Atomics.load(h, ENQ);
      }
    }
    const d = this.data;
    const base = idx * SLOT_BYTES;
    d[base] = len;
    d[base + 1] = flags;
    for (let i = 0; i < len; i++) d[base + 2 + i] = id.charCodeAt(i);
    // Publishing the sequence (a seq-cst store) makes the plain slot writes above visible to the consumer.
    Atomics.store(seq, idx, (pos + 1) | 0);
    return true;
  }

  /** Claim up to `max` ready items at once; writes them to out[0..n) and returns n (0 when empty). */
  popBatch(max: number, out: RingItem[]): number {
    const { h, seq, mask } = this;
    let pos = Atomics.load(h, DEQ);
    let n: number;
    for (;;) {
      n = 0;
      while (n < max && ((Atomics.load(seq, (pos + n) & mask) - ((pos + n + 1) | 0)) | 0) === 0) n++;
      if (n === 0) {
        const dif = (Atomics.load(seq, pos & mask) - ((pos + 1) | 0)) | 0;
        if (dif < 0) return 0; // empty
        pos = Atomics.load(h, DEQ); // another consumer moved on: look again
        continue;
      }
      const seen = Atomics.compareExchange(h, DEQ, pos, (pos + n) | 0);
      if (seen === pos) break;
      pos = seen;
    }
    const d = this.data;
    for (let k = 0; k < n; k++) {
      const p = (pos + k) | 0;
      const idx = p & mask;
      const base = idx * SLOT_BYTES;
      const len = d[base];
      out[k] = { id: String.fromCharCode.apply(null, d.subarray(base + 2, base + 2 + len) as unknown as number[]), flags: d[base + 1] };
      Atomics.store(seq, idx, (p + mask + 1) | 0);
    }
    return n;
  }

  /** Items pushed and not yet claimed (a snapshot). */
  get depth(): number {
    const d = (Atomics.load(this.h, ENQ) - Atomics.load(this.h, DEQ)) | 0;
    return d < 0 ? 0 : d > this.capacity ? this.capacity : d;
  }

  /** Wake consumers sleeping in waitForItems (producers call it once after a burst of pushes). */
  notify(): void {
    // Sequentially consistent: a consumer registers in SLEEP before it reads SIG and checks depth, and a producer
    // pushes before it reads SLEEP, so either the producer sees the sleeper or the sleeper sees the item.
    if (Atomics.load(this.h, SLEEP) === 0) return;
    Atomics.add(this.h, SIG, 1);
    Atomics.notify(this.h, SIG);
  }

  /**
   * Resolves when items may be available: at once if any are, else on notify() or after timeoutMs. `also`: a
   * second ring this consumer serves; its producers must then notify() this ring too (the check below and their
   * notify pair up like this ring's own, both sequentially consistent).
   */
  async waitForItems(timeoutMs: number, also?: Ring): Promise<void> {
    Atomics.add(this.h, SLEEP, 1);
    try {
      const v = Atomics.load(this.h, SIG);
      if (this.depth > 0 || (also !== undefined && also.depth > 0)) return;
      const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;
      if (typeof waitAsync === "function") {
        const r = waitAsync(this.h, SIG, v, timeoutMs);
        if (r.async) await r.value;
        return;
      }
      // No waitAsync (older runtimes): poll briefly; the blocking Atomics.wait would freeze this thread's events.
      await new Promise<void>((resolve) => setTimeout(resolve, Math.min(timeoutMs, 5)));
    } finally {
      Atomics.sub(this.h, SLEEP, 1);
    }
  }
}
