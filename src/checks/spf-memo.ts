/**
 * A short memory of SPF results: one client that sends many messages from one sender (a mailing list, a
 * provider's outbound relay) needs one evaluation per SPF_MEMO_MS, not one per MAIL FROM. The evaluation is a pure
 * function of (client address, HELO name, sender) and the DNS answers (RFC 7208 §4: every macro comes from those),
 * and the answers are cached by the resolver for their TTL anyway; remembering the outcome a few seconds longer
 * saves the ~80 µs of CPU of re-reading the same records (test/checks/measure-checks.ts).
 *
 * temperror is never remembered: the next MAIL FROM asks again. Bounded: at most SPF_MEMO_MAX entries, the oldest
 * dropped first.
 */
import type { DnsLookup } from "../dns/index.ts";
import { checkSpf, type SpfOptions } from "./spf.ts";
import type { SpfOutcome, SpfQuery } from "./types.ts";

export const SPF_MEMO_MS = 10_000;
export const SPF_MEMO_MAX = 10_000;

/** NUL cannot appear in an address, a HELO name or an SMTP path: the key is unambiguous. */
const keyOf = (q: SpfQuery): string => `${q.ip}\0${q.helo}\0${q.sender}`;

export class SpfMemo {
  private readonly entries = new Map<string, { until: number; outcome: SpfOutcome }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlMs = SPF_MEMO_MS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * The remembered outcome of this query, or undefined: lets the caller answer at once (a MAIL FROM that needs no
   * busy phase) when the sender was seen within SPF_MEMO_MS.
   */
  peek(q: SpfQuery): SpfOutcome | undefined {
    const hit = this.entries.get(keyOf(q));
    return hit !== undefined && hit.until > this.now() ? hit.outcome : undefined;
  }

  async check(q: SpfQuery, dns: DnsLookup, opts: SpfOptions = {}): Promise<SpfOutcome> {
    const known = this.peek(q);
    if (known !== undefined) return known;
    const outcome = await checkSpf(q, dns, opts);
    if (outcome.result === "temperror") return outcome;
    const key = keyOf(q);
    this.entries.delete(key);
    if (this.entries.size >= SPF_MEMO_MAX) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { until: this.now() + this.ttlMs, outcome });
    return outcome;
  }
}
