/**
 * What happens to the spool's items after the start-up scan (recover.ts): an item with a recipient still queued,
 * or whose next attempt is due, is delivered now (re-checked: a copy may have been made before the crash); a
 * deferred one waits for its recorded next attempt (the retry schedule survives a restart); a finished item whose
 * bounce had not been sent gets it now and leaves the spool.
 */
import type { Envelope } from "../mail/index.ts";
import type { Notifier } from "./notifier.ts";
import type { RecoverResult } from "./recover.ts";

export interface ResumeTargets {
  /** Deliver now, re-checking for copies already made. */
  deliverNow(id: string, envelope: Envelope): void;
  /** Deliver at `atMs`. */
  schedule(id: string, atMs: number, envelope: Envelope): void;
  /** Every item that stays in the spool (queue statistics). */
  track?(id: string, envelope: Envelope): void;
}

export interface ResumeLog {
  info(event: string, fields: Record<string, unknown>): void;
  error(event: string, fields: Record<string, unknown>): void;
}

export async function resumeRecovered(
  recovered: RecoverResult,
  targets: ResumeTargets,
  notifier: Notifier,
  log: ResumeLog,
  now = Date.now(),
): Promise<void> {
  for (const item of recovered.items) {
    targets.track?.(item.id, item.envelope);
    let queued = false;
    let next = 0;
    for (const st of item.state) {
      if (st.status === "queued") queued = true;
      else if (st.status === "deferred") next = next === 0 ? st.nextAttempt : Math.min(next, st.nextAttempt);
    }
    if (queued || next <= now) targets.deliverNow(item.id, item.envelope);
    else targets.schedule(item.id, next, item.envelope);
  }
  for (const item of recovered.finished) {
    try {
      await notifier.bounceFinished(item.id);
    } catch (err) {
      log.error("dsn.failed", { id: item.id, error: String(err) });
    }
  }
  if (recovered.items.length || recovered.removed.length || recovered.corrupt.length || recovered.fromSegments) {
    log.info("queue.recovered", {
      pending: recovered.items.length,
      removed: recovered.removed.length,
      corrupt: recovered.corrupt.length,
      from_segments: recovered.fromSegments,
    });
  }
}
