/**
 * The Received: trace field we put on top of every message (RFC 5321 §4.4, RFC 5322 §3.6.7), with the
 * "with" protocol names of RFC 3848 (ESMTPS/ESMTPA/ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP…).
 */

export interface ReceivedInfo {
  helo: string;
  clientAddress: string;
  hostname: string;
  esmtp: boolean;
  tls: string | undefined; // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  authenticated: boolean;
  utf8: boolean;
  id: string;
  /** The recipient, when the transaction has exactly one (RFC 5321 §4.4: "for" clause). */
  singleRecipient: string | undefined;
  date: Date;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const pad = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/** RFC 5322 §3.3 date-time in UTC, e.g. "Sat, 28 Nov 2026 16:05:07 +0000". */
export function rfc5322Date(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

/** The last second formatted: every message of that second shares it (no Date object, no formatting). */
let dateSecond = -1;
let dateText = "";

/** rfc5322Date of the time `ms` (ms since epoch), formatted once per second. */
export function rfc5322DateAt(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec !== dateSecond) {
    dateText = rfc5322Date(new Date(sec * 1000));
    dateSecond = sec;
  }
  return dateText;
}

/** RFC 5321 §4.1.3 address literal of the client. */
export function addressLiteral(ip: string): string {
  const v4 = ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
  return v4.includes(":") ? `[IPv6:${v4}]` : `[${v4}]`;
}

export function withProtocol(i: Pick<ReceivedInfo, "esmtp" | "tls" | "authenticated" | "utf8">): string {
  if (!i.esmtp) return "SMTP";
  const suffix = (i.tls ? "S" : "") + (i.authenticated ? "A" : "");
  return (i.utf8 ? "UTF8SMTP" : "ESMTP") + suffix;
}

/** Characters a client can put in EHLO that must not reach a header: keep printable ASCII/UTF-8, no parens. */
function clean(s: string): string {
  return s.replace(/[\x00-\x20\x7f()\\]/g, "?");
}

/** What stays the same for every message of a session until EHLO, STARTTLS or AUTH: all up to the id. */
export type ReceivedPrefixInfo = Pick<ReceivedInfo, "helo" | "clientAddress" | "hostname" | "esmtp" | "tls" | "authenticated" | "utf8">;

export function receivedPrefix(i: ReceivedPrefixInfo): string {
  const tls = i.tls ? `\r\n\t(using ${i.tls})` : "";
  return (
    `Received: from ${clean(i.helo)} (${addressLiteral(i.clientAddress)})${tls}\r\n` +
    `\tby ${i.hostname} (ringmta) with ${withProtocol(i)} id `
  );
}

/** The field from a prefix made by receivedPrefix; `ms` is the time of receipt. */
export function receivedFromPrefix(prefix: string, id: string, singleRecipient: string | undefined, ms: number): string {
  const forClause = singleRecipient !== undefined ? `\r\n\tfor <${clean(singleRecipient)}>` : "";
  return `${prefix}${id}${forClause};\r\n\t${rfc5322DateAt(ms)}\r\n`;
}

export function receivedHeader(i: ReceivedInfo): string {
  return receivedFromPrefix(receivedPrefix(i), i.id, i.singleRecipient, i.date.getTime());
}
