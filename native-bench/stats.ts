/** Counters and latency histograms shared by the sessions of one run. */
import { LatencyHistogram } from "./histogram.ts";

export class RunStats {
  readonly connect = new LatencyHistogram();
  readonly mail = new LatencyHistogram();
  readonly data = new LatencyHistogram();
  /** Replies by code (index = code; 0 = unparseable). */
  readonly replies = new Uint32Array(600);
  /** Messages started (MAIL sent). */
  attempted = 0;
  /** Messages answered 2xx at end of data. */
  accepted = 0;
  /** Messages that did not get a 2xx at end of data, or whose connection was lost. */
  failed = 0;
  /** Recipients accepted in accepted messages: the number of Maildir files to expect. */
  deliveries = 0;
  /** Message bytes (before stuffing) of accepted messages. */
  bytes = 0;
  /** Sessions that failed to connect, greet, negotiate, or that lost their connection. */
  connectionErrors = 0;
  /** performance.now() of the last reply of any kind (stall detection). */
  lastReplyAt = 0;
  /** performance.now() of the last accepted end of data. */
  lastAcceptAt = 0;
  /** The first unexpected reply or socket error, for the summary. */
  firstError: string | null = null;

  noteError(text: string): void {
    this.firstError ??= text;
  }

  repliesByCode(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let c = 0; c < this.replies.length; c++) if (this.replies[c]! > 0) out[String(c)] = this.replies[c]!;
    return out;
  }
}

/** The median of a run's repetitions (NaN for none). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
