/**
 * Which recipients a DSN reports, and with which action: decided here, once, for every path that sends one (an
 * attempt's outcome in the delivery worker, and a finished item found at start whose bounce was not sent yet).
 *
 * RFC 3461 §4.1: a recipient without NOTIFY is treated as NOTIFY=FAILURE,DELAY (the choice Postfix makes too).
 * A failed recipient is reported unless NOTIFY=NEVER or the sender is <> (RFC 3461 §6.1, RFC 5321 §4.5.5: never a
 * DSN to <>); a delivered one when NOTIFY has SUCCESS, except that a remote server offering DSN takes that duty
 * over (RFC 3461 §5.2.2: we report only "relayed" to a server without DSN); a deferred one once, when it has
 * waited past queue.delay_warning and NOTIFY has DELAY.
 */
import type { Envelope, EnvelopeRecipient, Outcome } from "../mail/index.ts";
import type { DsnActionName } from "./dsn.ts";
import { isFinal } from "./state-log.ts";
import type { RecipientState } from "./state-log.ts";

/** One recipient to report in a DSN. */
export interface Notice {
  index: number;
  action: DsnActionName;
}

const DEFAULT_NOTIFY: NonNullable<EnvelopeRecipient["notify"]> = ["FAILURE", "DELAY"];

/**
 * The DSN action an outcome calls for, or null. `delayDue`: the recipient has waited past queue.delay_warning and
 * was not warned yet (only a deferred outcome looks at it).
 */
export function noticeAction(sender: string, r: EnvelopeRecipient, o: Outcome, delayDue: boolean): DsnActionName | null {
  if (sender === "") return null;
  const notify = r.notify ?? DEFAULT_NOTIFY;
  if (notify.includes("NEVER")) return null;
  if (o.kind === "failed") return notify.includes("FAILURE") ? "failed" : null;
  if (o.kind === "delivered") {
    if (!notify.includes("SUCCESS")) return null;
    if (o.remoteMta === undefined) return "delivered";
    return o.relayed ? "relayed" : null;
  }
  return delayDue && notify.includes("DELAY") ? "delayed" : null;
}

/** The notices of a finished item from its recorded state (its bounce was not sent before a restart). */
export function finishedNotices(envelope: Envelope, state: readonly RecipientState[]): Notice[] {
  const out: Notice[] = [];
  envelope.recipients.forEach((r, index) => {
    const st = state[index];
    if (!isFinal(st) || st.last === null) return;
    const action = noticeAction(envelope.sender, r, st.last, false);
    if (action !== null) out.push({ index, action });
  });
  return out;
}
