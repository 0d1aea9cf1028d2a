/**
 * Delivery Status Notifications (RFC 3464), as bounces, delay warnings and success reports are sent:
 *
 *   multipart/report; report-type=delivery-status (RFC 6522)
 *     1. text/plain: what happened, in words, quoting each recipient's last reply
 *     2. message/delivery-status: Reporting-MTA, Original-Envelope-Id (ENVID), Arrival-Date; per recipient
 *        Original-Recipient (from ORCPT), Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
 *        Last-Attempt-Date, Will-Retry-Until (delayed)
 *     3. message/rfc822 (the whole message, RET=FULL) or text/rfc822-headers (RET=HDRS, and our default when the
 *        sender gave no RET: RFC 3461 §4.3 leaves it to us, and headers alone never re-send a large or private body)
 *
 * From MAILER-DAEMON@<hostname>, sent with the null envelope sender <> so that it is never bounced itself
 * (RFC 3464 §4, RFC 5321 §4.5.5). The bytes are produced as a sequence of chunks so that a returned message is
 * streamed from the spool, never held in memory whole.
 */
import { mailboxText, replyLine } from "../mail/index.ts";
import type { Envelope, Outcome } from "../mail/index.ts";

export type DsnActionName = "failed" | "delayed" | "delivered" | "relayed";

export interface DsnRecipient {
  /** The address delivered to (Final-Recipient). */
  address: string;
  /** RFC 3461 ORCPT as "type;address" (Original-Recipient), when the sender gave one. */
  orcpt?: string;
  action: DsnActionName;
  /** The last attempt's outcome; its remoteMta (a server that replied) is the Remote-MTA. */
  outcome: Outcome;
  /** ms since the epoch. */
  lastAttempt: number;
  /** Delayed: when we give up (arrival + max_age). */
  willRetryUntil?: number;
}

export interface DsnInput {
  /** Our host name: Reporting-MTA, MAILER-DAEMON@, Received. */
  hostname: string;
  /** The queue id of the DSN itself (Received, Message-ID). */
  dsnId: string;
  /** The original message's envelope (sender, ENVID, RET, arrival). */
  envelope: Envelope;
  recipients: DsnRecipient[];
  /** The original message bytes, streamed. */
  chunks: () => Iterable<Uint8Array>;
  now: number;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/** RFC 5322 §3.3 date-time in UTC. */
export function mailDate(ms: number): string {
  const d = new Date(ms);
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

/** RFC 3464 §2.3.4 Status: the outcome's enhanced code (RFC 3463), else one derived from its class or the action. */
export function statusOf(o: Pick<Outcome, "code" | "enhanced">, action: DsnActionName): string {
  if (o.enhanced !== "") return o.enhanced;
  const cls = Math.floor(o.code / 100);
  if (cls === 2 || cls === 4 || cls === 5) return `${cls}.0.0`;
  return action === "failed" ? "5.0.0" : action === "delayed" ? "4.0.0" : "2.0.0";
}

/**
 * RFC 3464 §2.3.6 Diagnostic-Code. "smtp" says the code is an SMTP reply a remote server sent, so it is used only
 * for those (outcomes with a remoteMta); a failure of our own (connect, TLS, DNS, a refusal before sending) is
 * shown under our own diagnostic type "X-ringmta" (§2.3.6 allows X- types; Postfix writes "X-Postfix"), and a
 * local delivery report needs none.
 */
export function diagnosticOf(r: DsnRecipient): string | null {
  if (r.outcome.remoteMta !== undefined) return `smtp; ${oneLine(replyLine(r.outcome))}`;
  if (r.action === "failed" || r.action === "delayed") return `X-ringmta; ${oneLine(replyLine(r.outcome))}`;
  return null;
}

/** Text for a header or a DSN field: one line, no control characters. */
const oneLine = (s: string): string => s.replace(/[\x00-\x1f\x7f]+/g, " ");

function humanText(input: DsnInput, full: boolean): string {
  const { hostname, recipients } = input;
  const has = (a: DsnActionName): boolean => recipients.some((r) => r.action === a);
  const out: string[] = [`This is the mail system at host ${hostname}.`, ""];
  if (has("failed")) {
    out.push("Your message could not be delivered to one or more recipients.");
  } else if (has("delayed")) {
    const until = Math.max(...recipients.map((r) => r.willRetryUntil ?? 0));
    out.push("Your message has not been delivered yet to the recipients below.");
    if (until > 0) out.push(`The mail system will keep trying until ${mailDate(until)}; you need not send it again.`);
  } else {
    out.push("Your message was delivered (or relayed) as listed below.");
  }
  out.push(full ? "The message is attached below." : "Its headers are attached below.", "");
  for (const r of recipients) {
    const mta = r.outcome.remoteMta;
    const who = mta !== undefined ? `host ${mta} said: ` : "";
    const reply = replyLine(r.outcome);
    let what: string;
    switch (r.action) {
      case "failed":
        // A 4xx reply on a failure means we gave up: queue.max_age passed (RFC 3464 §2.3.4 allows 4.x.x here).
        what = r.outcome.code < 500 ? `gave up retrying; the last reply: ${who}${reply}` : `${who}${reply}`;
        break;
      case "delayed":
        what = `delivery delayed; the last reply: ${who}${reply}`;
        break;
      case "relayed":
        what = `relayed to ${mta ?? "a server"} that sends no delivery notifications; ${reply}`;
        break;
      case "delivered":
        what = `delivered: ${reply}`;
        break;
    }
    out.push(`<${oneLine(mailboxText(r.address))}>: ${oneLine(what)}`);
  }
  return out.join("\r\n") + "\r\n";
}

function statusFields(input: DsnInput): string {
  const e = input.envelope;
  const lines: string[] = [`Reporting-MTA: dns; ${input.hostname}`];
  if (e.envid !== undefined) lines.push(`Original-Envelope-Id: ${oneLine(e.envid)}`);
  lines.push(`Arrival-Date: ${mailDate(e.arrival)}`);
  let s = lines.join("\r\n") + "\r\n";
  for (const r of input.recipients) {
    const f: string[] = [];
    if (r.orcpt !== undefined) {
      const semi = r.orcpt.indexOf(";");
      f.push(`Original-Recipient: ${semi > 0 ? `${r.orcpt.slice(0, semi)}; ${oneLine(r.orcpt.slice(semi + 1))}` : `rfc822; ${oneLine(r.orcpt)}`}`);
    }
    f.push(`Final-Recipient: rfc822; ${oneLine(mailboxText(r.address))}`);
    f.push(`Action: ${r.action}`);
    f.push(`Status: ${statusOf(r.outcome, r.action)}`);
    // RFC 3464 §2.3.5: only a host that actually replied is a Remote-MTA.
    if (r.outcome.remoteMta !== undefined) f.push(`Remote-MTA: dns; ${oneLine(r.outcome.remoteMta)}`);
    const diag = diagnosticOf(r);
    if (diag !== null) f.push(`Diagnostic-Code: ${diag}`);
    f.push(`Last-Attempt-Date: ${mailDate(r.lastAttempt)}`);
    if (r.action === "delayed" && r.willRetryUntil !== undefined) f.push(`Will-Retry-Until: ${mailDate(r.willRetryUntil)}`);
    s += "\r\n" + f.join("\r\n") + "\r\n";
  }
  return s;
}

const CRLFCRLF = [13, 10, 13, 10];

/** The header section of a message (up to and including the empty line), read from its first chunks. */
function headerBytes(chunks: Iterable<Uint8Array>, limit = 256 * 1024): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  let matched = 0;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++) {
      matched = c[i] === CRLFCRLF[matched] ? matched + 1 : c[i] === 13 ? 1 : 0;
      if (matched === 4) {
        parts.push(c.subarray(0, i + 1));
        return concat(parts, total + i + 1);
      }
    }
    parts.push(c);
    total += c.length;
    if (total >= limit) break;
  }
  // No body separator (a message of headers only): return what there is, ending with a line end.
  const all = concat(parts, total);
  return all.length >= 2 && all[all.length - 2] === 13 && all[all.length - 1] === 10 ? all : concat([all, Uint8Array.of(13, 10)], all.length + 2);
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p.subarray(0, Math.min(p.length, n - at)), at);
    at += p.length;
    if (at >= n) break;
  }
  return out;
}

/** The DSN as a sequence of chunks (CRLF line ends throughout), ready for a spool sink. */
export function* dsnChunks(input: DsnInput): Iterable<Uint8Array> {
  const enc = new TextEncoder();
  const e = input.envelope;
  // A BINARYMIME original cannot travel inside a text DSN (RFC 3030 §3): its headers go back instead.
  const full = e.ret === "FULL" && e.body !== "BINARYMIME";
  const boundary = `${input.dsnId}.${Math.floor(input.now / 1000)}/${input.hostname}`;
  const has = (a: DsnActionName): boolean => input.recipients.some((r) => r.action === a);
  const subject = has("failed")
    ? "Undelivered Mail Returned to Sender"
    : has("delayed")
      ? "Delayed Mail (still being retried)"
      : "Successful Mail Delivery Report";
  const date = mailDate(input.now);
  const head =
    `Received: by ${input.hostname} (ringmta) id ${input.dsnId};\r\n\t${date}\r\n` +
    `From: Mail Delivery System <MAILER-DAEMON@${input.hostname}>\r\n` +
    `To: <${oneLine(mailboxText(e.sender))}>\r\n` +
    `Subject: ${subject}\r\n` +
    `Date: ${date}\r\n` +
    `Message-ID: <${input.dsnId}.dsn@${input.hostname}>\r\n` +
    // RFC 3834 §5: a machine-generated reply; auto-responders must not answer it.
    `Auto-Submitted: auto-replied\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"\r\n` +
    `\r\n` +
    `This is a MIME-encapsulated message.\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Description: Notification\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n` +
    `Content-Transfer-Encoding: 8bit\r\n` +
    `\r\n` +
    humanText(input, full) +
    `\r\n--${boundary}\r\n` +
    `Content-Description: Delivery report\r\n` +
    `Content-Type: message/delivery-status\r\n` +
    `\r\n` +
    statusFields(input) +
    `\r\n--${boundary}\r\n` +
    (full
      ? `Content-Description: Returned message\r\nContent-Type: message/rfc822\r\n`
      : `Content-Description: Returned headers\r\nContent-Type: text/rfc822-headers\r\n`) +
    `\r\n`;
  yield enc.encode(head);
  let last = 10;
  if (full) {
    for (const c of input.chunks()) {
      if (c.length === 0) continue;
      last = c[c.length - 1];
      yield c;
    }
  } else {
    const h = headerBytes(input.chunks());
    if (h.length > 0) last = h[h.length - 1];
    yield h;
  }
  yield enc.encode(`${last === 10 ? "" : "\r\n"}\r\n--${boundary}--\r\n`);
}
