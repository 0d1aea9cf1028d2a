/**
 * SMTP command parsing (RFC 5321 §4.1, ESMTP parameters of RFC 1870, 6152, 3030, 3461, 4954, 6531). Input is one
 * command line without its CRLF; the verb is matched on bytes, only the argument is decoded.
 */
import { decodeXtext, isXtext } from "./xtext.ts";

export interface Path {
  /** As given between the brackets minus any source route; "" for the null path <>. */
  address: string;
  /** The local part's value (a quoted local part unquoted and unescaped). */
  localPart: string;
  /** Domain or address literal (with brackets) as given; "" for <> and <postmaster>. */
  domain: string;
  /** Non-ASCII present (RFC 6531): the session requires SMTPUTF8 then. */
  utf8: boolean;
}

export interface MailParams {
  size?: number;
  body?: "7BIT" | "8BITMIME" | "BINARYMIME";
  smtputf8: boolean;
  ret?: "FULL" | "HDRS";
  /** xtext-decoded (RFC 3461 §4.4). */
  envid?: string;
  /** RFC 4954 §5, kept as xtext. */
  auth?: string;
}

export interface RcptParams {
  notify?: Array<"NEVER" | "SUCCESS" | "FAILURE" | "DELAY">;
  /** "addr-type;address", the address xtext-decoded for rfc822 (RFC 3461 §4.2). */
  orcpt?: string;
}

export type Command =
  | { verb: "EHLO" | "HELO"; domain: string }
  | { verb: "MAIL"; path: Path; params: MailParams }
  | { verb: "RCPT"; path: Path; params: RcptParams }
  | { verb: "DATA" }
  | { verb: "RSET" }
  | { verb: "QUIT" }
  | { verb: "STARTTLS" }
  | { verb: "NOOP" }
  | { verb: "VRFY"; arg: string }
  | { verb: "HELP"; arg: string }
  | { verb: "BDAT"; size: number; last: boolean }
  | { verb: "AUTH"; mechanism: string; initial?: string };

/** badDsn: a malformed ENVID or ORCPT (RFC 3461 §4), 501 5.5.4 at that command. */
export type ParseError = "unknown" | "syntax" | "badSender" | "badRecipient" | "badParam" | "badDsn";

export type ParsedCommand = { ok: true; command: Command } | { ok: false; error: ParseError };

const SP = 32;
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function up(b: number): number {
  return b >= 97 && b <= 122 ? b - 32 : b;
}

function key4(s: string): number {
  return ((s.charCodeAt(0) << 24) | (s.charCodeAt(1) << 16) | (s.charCodeAt(2) << 8) | s.charCodeAt(3)) >>> 0;
}

const K_EHLO = key4("EHLO");
const K_HELO = key4("HELO");
const K_MAIL = key4("MAIL");
const K_RCPT = key4("RCPT");
const K_DATA = key4("DATA");
const K_RSET = key4("RSET");
const K_QUIT = key4("QUIT");
const K_NOOP = key4("NOOP");
const K_VRFY = key4("VRFY");
const K_HELP = key4("HELP");
const K_BDAT = key4("BDAT");
const K_AUTH = key4("AUTH");
const K_STAR = key4("STAR");
const K_TTLS = key4("TTLS");

/** Byte classes: bit 1 atext (RFC 5322 §3.2.3 via RFC 5321 §4.1.2), bit 2 let-dig, bit 4 ldh. */
const ATEXT = 1;
const LETDIG = 2;
const LDH = 4;
const CLASS = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const alnum = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122);
  // RFC 6531 §3.3: UTF8-non-ascii is allowed in atext and in domain labels (U-labels).
  if (alnum || b >= 128 || "!#$%&'*+-/=?^_`{|}~".includes(String.fromCharCode(b))) CLASS[b] |= ATEXT;
  if (alnum || b >= 128) CLASS[b] |= LETDIG | LDH;
  if (b === 45) CLASS[b] |= LDH;
}

const ok = (command: Command): ParsedCommand => ({ ok: true, command });
const fail = (error: ParseError): ParsedCommand => ({ ok: false, error });
const SYNTAX = fail("syntax");
const BAD_PARAM = fail("badParam");
const BAD_DSN = fail("badDsn");

function text(line: Uint8Array, a: number, b: number): string {
  return utf8Strict.decode(line.subarray(a, b));
}

/** True when [a, b) holds only spaces. */
function blank(line: Uint8Array, a: number, b: number): boolean {
  for (let i = a; i < b; i++) if (line[i] !== SP) return false;
  return true;
}

/**
 * Parse one command line (without CRLF): line[start..end), by default all of `line`. The session passes the
 * chunk and the line's bounds, which spares a view per command.
 */
export function parseCommand(line: Uint8Array, start = 0, end = line.length): ParsedCommand {
  const n = end;
  // The verb is 4 or 8 letters: look for its end among the first 9 bytes only.
  const lim = Math.min(n, start + 9);
  let vEnd = start;
  while (vEnd < lim && line[vEnd] !== SP) vEnd++;
  const s = start;
  let verb = 0;
  if (vEnd - s === 4) {
    verb = ((up(line[s]) << 24) | (up(line[s + 1]) << 16) | (up(line[s + 2]) << 8) | up(line[s + 3])) >>> 0;
  } else if (vEnd - s === 8) {
    const a = ((up(line[s]) << 24) | (up(line[s + 1]) << 16) | (up(line[s + 2]) << 8) | up(line[s + 3])) >>> 0;
    const b = ((up(line[s + 4]) << 24) | (up(line[s + 5]) << 16) | (up(line[s + 6]) << 8) | up(line[s + 7])) >>> 0;
    if (a !== K_STAR || b !== K_TTLS) return fail("unknown");
    return blank(line, vEnd, n) ? ok({ verb: "STARTTLS" }) : SYNTAX;
  } else {
    return fail("unknown");
  }
  const aStart = vEnd + 1;
  // Control characters (a bare CR or LF inside the line, NUL, ...) never belong in an argument; non-ASCII must be
  // valid UTF-8 (RFC 6531 §3.3) or nothing downstream can trust the strings. MAIL and RCPT leave control bytes to
  // their path and parameter scanners, which refuse them too but with the reply of the part they spoil (CONTRACT:
  // a control byte in an address is a malformed address, 501 5.1.7 / 501 5.1.3).
  const pathVerb = verb === K_MAIL || verb === K_RCPT;
  let nonAscii = false;
  for (let i = aStart; i < n; i++) {
    const b = line[i];
    if ((b < 32 || b === 127) && !pathVerb) {
      return verbKnown(verb) ? SYNTAX : fail("unknown");
    }
    if (b >= 128) nonAscii = true;
  }
  // MAIL and RCPT decode their parts strictly where they read them (an invalid sequence in the address is a
  // malformed address, in a parameter a syntax error): see commandPath and pathCommand.
  if (nonAscii && !pathVerb) {
    try {
      utf8Strict.decode(line.subarray(aStart, n));
    } catch {
      return verbKnown(verb) ? SYNTAX : fail("unknown");
    }
  }
  switch (verb) {
    case K_EHLO:
    case K_HELO: {
      // Lenient like Postfix: keep the first token as given (the Received header needs it); reject only none.
      let a = aStart;
      while (a < n && line[a] === SP) a++;
      let b = a;
      while (b < n && line[b] !== SP) b++;
      if (a === b) return SYNTAX;
      return ok({ verb: verb === K_EHLO ? "EHLO" : "HELO", domain: text(line, a, b) });
    }
    case K_MAIL:
      return pathCommand(parseMail, line, aStart, n);
    case K_RCPT:
      return pathCommand(parseRcpt, line, aStart, n);
    case K_DATA:
      return blank(line, vEnd, n) ? ok({ verb: "DATA" }) : SYNTAX;
    case K_RSET:
      return blank(line, vEnd, n) ? ok({ verb: "RSET" }) : SYNTAX;
    case K_QUIT:
      return blank(line, vEnd, n) ? ok({ verb: "QUIT" }) : SYNTAX;
    case K_NOOP:
      // RFC 5321 §4.1.1.9: a NOOP argument is allowed and ignored.
      return ok({ verb: "NOOP" });
    case K_VRFY: {
      const arg = aStart < n ? text(line, aStart, n).trim() : "";
      return arg === "" ? SYNTAX : ok({ verb: "VRFY", arg });
    }
    case K_HELP:
      return ok({ verb: "HELP", arg: aStart < n ? text(line, aStart, n).trim() : "" });
    case K_BDAT:
      return parseBdat(aStart < n ? text(line, aStart, n) : "");
    case K_AUTH:
      return parseAuth(aStart < n ? text(line, aStart, n) : "");
    default:
      return fail("unknown");
  }
}

function verbKnown(verb: number): boolean {
  switch (verb) {
    case K_EHLO:
    case K_HELO:
    case K_MAIL:
    case K_RCPT:
    case K_DATA:
    case K_RSET:
    case K_QUIT:
    case K_NOOP:
    case K_VRFY:
    case K_HELP:
    case K_BDAT:
    case K_AUTH:
      return true;
    default:
      return false;
  }
}

function tokens(s: string): string[] {
  return s.split(" ").filter((t) => t !== "");
}

const DIGITS = /^[0-9]{1,15}$/;

/** RFC 3030 §2: BDAT SP chunk-size [SP end-marker]. */
function parseBdat(arg: string): ParsedCommand {
  const t = tokens(arg);
  if (t.length < 1 || t.length > 2 || !DIGITS.test(t[0])) return SYNTAX;
  if (t.length === 2 && t[1].toUpperCase() !== "LAST") return SYNTAX;
  return ok({ verb: "BDAT", size: Number(t[0]), last: t.length === 2 });
}

const SASL_MECH = /^[A-Za-z0-9_-]{1,20}$/;

/** RFC 4954 §4: AUTH mechanism [initial-response]; "=" stands for an empty initial response. */
function parseAuth(arg: string): ParsedCommand {
  const t = tokens(arg);
  if (t.length < 1 || t.length > 2 || !SASL_MECH.test(t[0])) return SYNTAX;
  const mechanism = t[0].toUpperCase();
  return ok(t.length === 2 ? { verb: "AUTH", mechanism, initial: t[1] } : { verb: "AUTH", mechanism });
}

/** Matches the case-insensitive keyword `kw` (upper-case ASCII) at line[i]. */
function keyword(line: Uint8Array, i: number, n: number, kw: string): boolean {
  if (n - i < kw.length) return false;
  for (let k = 0; k < kw.length; k++) if (up(line[i + k]) !== kw.charCodeAt(k)) return false;
  return true;
}

/** "postmaster" in any case at line[i] (the caller checked that 10 bytes are there). */
function isPostmaster(line: Uint8Array, i: number): boolean {
  const kw = "POSTMASTER";
  for (let k = 0; k < 10; k++) if (up(line[i + k]) !== kw.charCodeAt(k)) return false;
  return true;
}

/** Parsed path and where it ended, or the failure. */
type PathScan = { path: Path; end: number } | null;

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets. */
const MAX_PATH = 256;

/**
 * Scan a dotted domain (RFC 5321 §4.1.2 Domain, U-labels per RFC 6531 §3.3) at line[i]; index after it or -1.
 * Labels start and end with a letter or digit and hold at most 63 octets (RFC 1035 §2.3.4).
 */
function scanDomain(line: Uint8Array, i: number, n: number): number {
  const start = i;
  for (;;) {
    const label = i;
    if (i >= n || (CLASS[line[i]] & LETDIG) === 0) return -1;
    while (i < n && (CLASS[line[i]] & LDH) !== 0) i++;
    if (line[i - 1] === 45 || i - label > 63) return -1;
    if (i < n && line[i] === 46) {
      i++;
      continue;
    }
    return i - start > 255 ? -1 : i;
  }
}

const SNUM = /^[0-9]{1,3}$/;
const HEXGROUP = /^[0-9A-Fa-f]{1,4}$/;
const LDH_STR = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/;

/** RFC 5321 §4.1.3 IPv4-address-literal: four Snum (1*3DIGIT, value 0..255). */
function isIpv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  for (const p of parts) if (!SNUM.test(p) || Number(p) > 255) return false;
  return true;
}

/**
 * RFC 5321 §4.1.3 IPv6-addr: IPv6-full (8 groups), IPv6-comp ("::" standing for at least two groups, at most 6
 * others), and the IPv6v4 forms where a dotted IPv4 tail takes the place of the last two groups.
 */
function isIpv6(s: string): boolean {
  const lastColon = s.lastIndexOf(":");
  if (lastColon === -1) return false;
  let groups = 8;
  let head = s;
  if (s.indexOf(".", lastColon) !== -1) {
    if (!isIpv4(s.slice(lastColon + 1))) return false;
    groups = 6;
    // "a:b:c:d:e:f:1.2.3.4" keeps "a:b:c:d:e:f"; "a::1.2.3.4" keeps "a::".
    head = s.charCodeAt(lastColon - 1) === 58 ? s.slice(0, lastColon + 1) : s.slice(0, lastColon);
  }
  const dbl = head.indexOf("::");
  if (dbl === -1) {
    const g = head.split(":");
    return g.length === groups && g.every((x) => HEXGROUP.test(x));
  }
  if (head.indexOf("::", dbl + 1) !== -1) return false;
  const left = head.slice(0, dbl);
  const right = head.slice(dbl + 2);
  const g = [...(left === "" ? [] : left.split(":")), ...(right === "" ? [] : right.split(":"))];
  return g.length <= groups - 2 && g.every((x) => HEXGROUP.test(x));
}

/** RFC 5321 §4.1.3 address-literal content (between the brackets). */
function isAddressLiteral(s: string): boolean {
  if (s.length > 5 && s.slice(0, 5).toUpperCase() === "IPV6:") return isIpv6(s.slice(5));
  const colon = s.indexOf(":");
  if (colon === -1) return isIpv4(s);
  // General-address-literal = Standardized-tag ":" 1*dcontent (dcontent: %d33-90 / %d94-126).
  if (!LDH_STR.test(s.slice(0, colon)) || colon === s.length - 1) return false;
  for (let i = colon + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 33 || c > 126 || (c >= 91 && c <= 93)) return false;
  }
  return true;
}

/**
 * RFC 5321 §4.1.2 Path at line[i]: "<" [A-d-l ":"] Mailbox ">", or "<>" when nullOk. A source route is parsed and
 * dropped (§4.1.2, Appendix C). `<postmaster>` without a domain is taken when postmasterOk (§4.5.1).
 */
function scanPath(line: Uint8Array, i: number, n: number, nullOk: boolean, postmasterOk: boolean): PathScan {
  const start = i;
  if (i >= n || line[i] !== 60) return null;
  i++;
  if (i < n && line[i] === 62) return nullOk ? { path: { address: "", localPart: "", domain: "", utf8: false }, end: i + 1 } : null;
  if (i < n && line[i] === 64) {
    // A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain.
    for (;;) {
      i = scanDomain(line, i + 1, n);
      if (i === -1 || i >= n) return null;
      if (line[i] === 44) {
        i++;
        if (i >= n || line[i] !== 64) return null;
        continue;
      }
      if (line[i] !== 58) return null;
      i++;
      break;
    }
  }
  const mStart = i;
  /** null: a dot-string, taken from the address below (no second decode). */
  let localPart: string | null;
  if (i < n && line[i] === 34) {
    // Quoted-string: qtextSMTP (%d32-33 / %d35-91 / %d93-126, UTF-8 per RFC 6531) and quoted-pairSMTP.
    i++;
    let value = "";
    let run = i;
    for (;;) {
      if (i >= n) return null;
      const b = line[i];
      if (b === 34) break;
      if (b === 92) {
        const q = line[i + 1];
        if (i + 1 >= n || q < 32 || q > 126) return null;
        value += text(line, run, i);
        run = i + 1;
        i += 2;
        continue;
      }
      if (b < 32 || b === 127) return null;
      i++;
    }
    localPart = value + text(line, run, i);
    i++;
  } else {
    localPart = null;
    // Dot-string = Atom *("." Atom).
    for (;;) {
      const atom = i;
      while (i < n && (CLASS[line[i]] & ATEXT) !== 0) i++;
      if (i === atom) return null;
      if (i < n && line[i] === 46) {
        i++;
        continue;
      }
      break;
    }
  }
  const lpEnd = i;
  let dStart = i;
  if (i < n && line[i] === 64) {
    i++;
    dStart = i;
    if (i < n && line[i] === 91) {
      const close = line.indexOf(93, i);
      if (close === -1 || close >= n) return null;
      if (!isAddressLiteral(text(line, i + 1, close))) return null;
      i = close + 1;
    } else {
      i = scanDomain(line, i, n);
      if (i === -1) return null;
    }
  } else if (!(postmasterOk && lpEnd - mStart === 10 && isPostmaster(line, mStart))) {
    return null;
  }
  if (i >= n || line[i] !== 62) return null;
  i++;
  if (i - start > MAX_PATH) return null;
  let utf8 = false;
  for (let k = start; k < i; k++) {
    if (line[k] >= 128) {
      utf8 = true;
      break;
    }
  }
  const address = text(line, mStart, i - 1);
  // ASCII: byte offsets are string offsets, so the parts are slices of the address rather than new decodes.
  if (localPart === null) localPart = utf8 ? text(line, mStart, lpEnd) : address.slice(0, lpEnd - mStart);
  const domain = dStart === lpEnd ? "" : utf8 ? text(line, dStart, i - 1) : address.slice(dStart - mStart);
  return { path: { address, localPart, domain, utf8 }, end: i };
}

/**
 * "FROM:" / "TO:" then the path; one space after the colon is tolerated (many clients send it). Returns the scan,
 * "syntax" when the keyword is wrong, or null when the path is malformed.
 */
function commandPath(
  line: Uint8Array,
  i: number,
  n: number,
  kw: string,
  isMail: boolean,
): PathScan | "syntax" {
  if (!keyword(line, i, n, kw)) return "syntax";
  i += kw.length;
  if (i < n && line[i] === SP) i++;
  let scan: PathScan;
  try {
    scan = scanPath(line, i, n, isMail, !isMail);
  } catch {
    return null; // not UTF-8 (RFC 6531 §3.3): a malformed path
  }
  // Parameters follow after a space; anything glued to ">" is a malformed path.
  if (scan !== null && scan.end < n && line[scan.end] !== SP) return null;
  return scan;
}

function isAsciiAlnum(b: number): boolean {
  return (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122);
}

/** One esmtp-param: the keyword upper-cased, the value as line[vStart..vEnd), vStart -1 when there is none. */
type Param = [key: string, vStart: number, vEnd: number];

/**
 * Split "KEY[=VALUE]" tokens (RFC 5321 §4.1.2 esmtp-param) on the bytes; null when one is malformed. The keyword
 * (esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), ASCII only) comes back upper-cased; values stay bytes
 * until a parameter needs their text.
 */
function esmtpParams(line: Uint8Array, i: number, n: number): Param[] | null | "control" {
  const out: Param[] = [];
  while (i < n) {
    if (line[i] === SP) {
      i++;
      continue;
    }
    const t = i;
    while (i < n && line[i] !== SP) i++;
    let k = t;
    if (!isAsciiAlnum(line[k])) return line[k] < 32 || line[k] === 127 ? "control" : null;
    let key = String.fromCharCode(up(line[k++]));
    for (; k < i && line[k] !== 61; k++) {
      const b = line[k];
      if (b !== 45 && !isAsciiAlnum(b)) return b < 32 || b === 127 ? "control" : null;
      key += String.fromCharCode(up(b));
    }
    if (k === i) {
      out.push([key, -1, -1]);
      continue;
    }
    // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531 §3.3): no "=", no control byte, not empty.
    const v = k + 1;
    if (v === i) return null;
    for (let j = v; j < i; j++) {
      const b = line[j];
      // A control byte (TAB included) is a syntax error, 501 5.5.4, whichever parameter it is in (CONTRACT).
      if (b < 33 || b === 127) return "control";
      if (b === 61) return null;
    }
    out.push([key, v, i]);
  }
  return out;
}

/** The value of a parameter as text, undefined when it has none. */
function paramValue(line: Uint8Array, p: Param): string | undefined {
  return p[1] < 0 ? undefined : text(line, p[1], p[2]);
}

/**
 * RFC 1870 §3 size-value = 1*20DIGIT; -1 when it is not one. Past 15 digits a double is no longer exact, but such
 * a value is far above any max_message_size, which is all it is compared with (552 5.3.4, not a syntax error).
 */
function sizeValue(line: Uint8Array, a: number, b: number): number {
  if (a < 0 || b - a > 20) return -1;
  let v = 0;
  for (let i = a; i < b; i++) {
    const d = line[i] - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** MAIL or RCPT; a parameter value that is not UTF-8 (its strict decode throws) is a syntax error. */
function pathCommand(parse: (line: Uint8Array, i: number, n: number) => ParsedCommand, line: Uint8Array, i: number, n: number): ParsedCommand {
  try {
    return parse(line, i, n);
  } catch {
    return SYNTAX;
  }
}

function parseMail(line: Uint8Array, i: number, n: number): ParsedCommand {
  const scan = commandPath(line, i, n, "FROM:", true);
  if (scan === "syntax") return SYNTAX;
  if (scan === null) return fail("badSender");
  const params = esmtpParams(line, scan.end, n);
  if (params === "control") return SYNTAX;
  if (params === null) return BAD_PARAM;
  const p: MailParams = { smtputf8: false };
  let seen = 0;
  for (const param of params) {
    const k = param[0];
    if (k === "SIZE") {
      // RFC 1870 §3: read on the bytes (every client sends it).
      const size = sizeValue(line, param[1], param[2]);
      if (size < 0 || seen & 1) return BAD_PARAM;
      p.size = size;
      seen |= 1;
      continue;
    }
    const v = paramValue(line, param);
    let bit: number;
    switch (k) {
      case "BODY": {
        // RFC 6152 §2, RFC 3030 §3
        const b = v?.toUpperCase();
        if (b !== "7BIT" && b !== "8BITMIME" && b !== "BINARYMIME") return BAD_PARAM;
        p.body = b;
        bit = 2;
        break;
      }
      case "SMTPUTF8": // RFC 6531 §3.4: no value
        if (v !== undefined) return BAD_PARAM;
        p.smtputf8 = true;
        bit = 4;
        break;
      case "RET": {
        // RFC 3461 §4.3
        const r = v?.toUpperCase();
        if (r !== "FULL" && r !== "HDRS") return BAD_PARAM;
        p.ret = r;
        bit = 8;
        break;
      }
      case "ENVID": {
        // RFC 3461 §4.4: xtext of printable US-ASCII, at most 100 characters (checked decoded, as stored).
        const d = v === undefined ? null : decodeXtext(v);
        if (d === null || d.length > MAX_ENVID || !printableAscii(d)) return BAD_DSN;
        p.envid = d;
        bit = 16;
        break;
      }
      case "AUTH": // RFC 4954 §5: xtext mailbox or "<>"
        if (v === undefined || !isXtext(v)) return BAD_PARAM;
        p.auth = v;
        bit = 32;
        break;
      default:
        return BAD_PARAM;
    }
    if (seen & bit) return BAD_PARAM;
    seen |= bit;
  }
  return ok({ verb: "MAIL", path: scan.path, params: p });
}

const NOTIFY_VALUES = new Set(["NEVER", "SUCCESS", "FAILURE", "DELAY"]);
/** RFC 3461 §4.4 and §4.2: the ENVID is at most 100 characters, the ORCPT address at most 500. */
const MAX_ENVID = 100;
const MAX_ORCPT = 500;

/**
 * RFC 3461 §4.2, §4.4: printable (graphic and white space) US-ASCII. Of the white space only SP: a TAB, CR or LF
 * would end up in a DSN field or on the next hop's command line.
 */
function printableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c > 126) return false;
  }
  return true;
}

/**
 * The address of an ORCPT whose type is not rfc822 (e.g. utf-8, RFC 6533 §3: utf-8-addr-xtext, or unitext with
 * raw UTF-8 under SMTPUTF8). It is kept as received, so it is only checked: every "+" starts a "+HH" that stands
 * for printable ASCII (no control character hides in it); raw bytes are printable or UTF-8 (esmtpParams has
 * already refused control bytes and "=").
 */
function otherOrcptOk(addr: string): boolean {
  if (addr.length > MAX_ORCPT) return false;
  for (let i = 0; i < addr.length; i++) {
    if (addr.charCodeAt(i) !== 43) continue;
    const hex = addr.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return false;
    const c = parseInt(hex, 16);
    if (c < 32 || c > 126) return false;
    i += 2;
  }
  return true;
}
const ADDR_TYPE = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;

function parseRcpt(line: Uint8Array, i: number, n: number): ParsedCommand {
  const scan = commandPath(line, i, n, "TO:", false);
  if (scan === "syntax") return SYNTAX;
  if (scan === null) return fail("badRecipient");
  const params = esmtpParams(line, scan.end, n);
  if (params === "control") return SYNTAX;
  if (params === null) return BAD_PARAM;
  const p: RcptParams = {};
  for (const param of params) {
    const k = param[0];
    const v = paramValue(line, param);
    switch (k) {
      case "NOTIFY": {
        // RFC 3461 §4.1: "NEVER" alone, or a list of SUCCESS / FAILURE / DELAY.
        if (p.notify !== undefined || v === undefined) return BAD_PARAM;
        const list = v.toUpperCase().split(",");
        if (new Set(list).size !== list.length) return BAD_PARAM;
        for (const x of list) if (!NOTIFY_VALUES.has(x)) return BAD_PARAM;
        if (list.length > 1 && list.includes("NEVER")) return BAD_PARAM;
        p.notify = list as RcptParams["notify"];
        break;
      }
      case "ORCPT": {
        // RFC 3461 §4.2: addr-type ";" xtext; the address is decoded for rfc822, other types kept as sent (RFC
        // 6533 §3 for utf-8: re-encoding it would change it). A malformed one is refused here, 501 5.5.4, not
        // accepted to fail every later delivery.
        if (p.orcpt !== undefined) return BAD_PARAM;
        if (v === undefined) return BAD_DSN;
        const semi = v.indexOf(";");
        if (semi <= 0 || semi === v.length - 1) return BAD_DSN;
        const type = v.slice(0, semi);
        if (!ADDR_TYPE.test(type)) return BAD_DSN;
        let addr: string | null = v.slice(semi + 1);
        if (type.toLowerCase() === "rfc822") {
          addr = decodeXtext(addr);
          if (addr === null || addr.length > MAX_ORCPT || !printableAscii(addr)) return BAD_DSN;
        } else if (!otherOrcptOk(addr)) {
          return BAD_DSN;
        }
        p.orcpt = type + ";" + addr;
        break;
      }
      default:
        return BAD_PARAM;
    }
  }
  return ok({ verb: "RCPT", path: scan.path, params: p });
}
