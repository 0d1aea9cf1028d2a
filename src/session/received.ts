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

/** RFC 5322 §2.1.1: a line of a header field is at most 998 octets without its CRLF. */
export const MAX_LINE = 998;
/**
 * Shown escaped names are cut here: a domain is at most 255 octets (RFC 1035 §2.3.4), so a longer EHLO argument
 * is garbage anyway, and the cut keeps the "from" line far below MAX_LINE whatever the escapes cost.
 */
const MAX_SHOWN = 255;

const ASCII_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** A U-label as RFC 6531 allows under SMTPUTF8: letters, marks and digits only, so no control, format or bidi. */
const UTF8_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?$/u;
const ADDRESS_LITERAL = /^\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]{2,45})\]$/i;
const encoder = new TextEncoder();

/** A domain (RFC 5321 §4.1.2; U-labels only when the message is SMTPUTF8) or an address literal (§4.1.3). */
export function isShowableName(s: string, utf8: boolean): boolean {
  if (ADDRESS_LITERAL.test(s)) return true;
  if (s.length === 0 || s.length > 255) return false;
  const label = utf8 ? UTF8_LABEL : ASCII_LABEL;
  for (const l of s.split(".")) if (!label.test(l) || encoder.encode(l).length > 63) return false;
  return encoder.encode(s).length <= 255;
}

/** Characters that stand for themselves in an escaped name: what a domain or literal is made of, and "_". */
const PLAIN = /[A-Za-z0-9.\-_:[\]]/;

/**
 * An EHLO/HELO argument as the Received field shows it (CONTRACT: a name that is not a valid domain or address
 * literal in an escaped, ASCII-only form). Valid names stand as they are; anything else has each code point
 * outside PLAIN written as \x{HEX} (the notation of RFC 6533 §3), so no 8-bit byte without SMTPUTF8 (RFC 5322 is
 * ASCII), no control or bidi character (U+202E, U+2028), no "(", ";" or CRLF that would change the field's
 * structure, and the original stays recoverable. Over MAX_SHOWN characters the escaped form is cut and ends "...".
 */
export function shownName(s: string, utf8: boolean): string {
  if (isShowableName(s, utf8)) return s;
  let out = "";
  for (const ch of s) {
    out += PLAIN.test(ch) ? ch : `\\x{${ch.codePointAt(0)!.toString(16).toUpperCase()}}`;
    if (out.length > MAX_SHOWN) return out.slice(0, MAX_SHOWN) + "...";
  }
  return out;
}

/**
 * The "for" address (RFC 5321 §4.4): already a parsed path, so only characters that must not reach a header at all
 * are replaced: controls, format and bidi controls (\p{Cf}), line and paragraph separators, and 8-bit text when
 * the message is not SMTPUTF8.
 */
function cleanAddress(s: string, utf8: boolean): string {
  return s.replace(utf8 ? /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu : /[^\x21-\x7e]/g, "?");
}

/**
 * Fold (RFC 5322 §2.2.3) every line longer than MAX_LINE octets at its last space or tab before the limit, so no
 * line of the field exceeds 998 octets whatever a client sent. A line without white space to fold at is cut; with
 * the names bounded above it does not occur.
 */
export function foldLongLines(field: string): string {
  const lines = field.split("\r\n");
  for (let k = 0; k < lines.length; k++) {
    let line = lines[k];
    if (octets(line) <= MAX_LINE) continue;
    const parts: string[] = [];
    while (octets(line) > MAX_LINE) {
      let cut = Math.min(line.length, MAX_LINE);
      while (octets(line.slice(0, cut)) > MAX_LINE) cut--;
      // Never between the halves of a surrogate pair.
      if (cut > 0 && /[\uD800-\uDBFF]/.test(line[cut - 1])) cut--;
      const ws = Math.max(line.lastIndexOf(" ", cut), line.lastIndexOf("\t", cut));
      if (ws > 0) {
        parts.push(line.slice(0, ws));
        line = line.slice(ws); // the continuation starts with the white space folded at
      } else {
        parts.push(line.slice(0, cut));
        line = "\t" + line.slice(cut);
      }
    }
    parts.push(line);
    lines[k] = parts.join("\r\n");
  }
  return lines.join("\r\n");
}

function octets(s: string): number {
  return encoder.encode(s).length;
}

/** What stays the same for every message of a session until EHLO, STARTTLS or AUTH: all up to the id. */
export type ReceivedPrefixInfo = Pick<ReceivedInfo, "helo" | "clientAddress" | "hostname" | "esmtp" | "tls" | "authenticated" | "utf8">;

export function receivedPrefix(i: ReceivedPrefixInfo): string {
  const tls = i.tls ? `\r\n\t(using ${i.tls})` : "";
  return (
    `Received: from ${shownName(i.helo, i.utf8)} (${addressLiteral(i.clientAddress)})${tls}\r\n` +
    `\tby ${i.hostname} (ringmta) with ${withProtocol(i)} id `
  );
}

/**
 * The field from a prefix made by receivedPrefix; `ms` is the time of receipt; `utf8`: the message is SMTPUTF8.
 * Every line is short by construction (names cut at 255, addresses at most 256 octets, RFC 5321 §4.5.3.1.3); the
 * fold is the guarantee of RFC 5322 §2.1.1 should that ever change, and costs one length test per message.
 */
export function receivedFromPrefix(
  prefix: string,
  id: string,
  singleRecipient: string | undefined,
  ms: number,
  utf8 = false,
): string {
  const forClause = singleRecipient !== undefined ? `\r\n\tfor <${cleanAddress(singleRecipient, utf8)}>` : "";
  const field = `${prefix}${id}${forClause};\r\n\t${rfc5322DateAt(ms)}\r\n`;
  // Three octets per UTF-16 unit at most: a field this short cannot have a long line.
  return field.length * 3 <= MAX_LINE ? field : foldLongLines(field);
}

export function receivedHeader(i: ReceivedInfo): string {
  return receivedFromPrefix(receivedPrefix(i), i.id, i.singleRecipient, i.date.getTime(), i.utf8);
}
