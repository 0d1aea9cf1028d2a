/**
 * Syntax checks for the network values of the config: IP addresses, CIDR blocks, "host:port", domain names and
 * mail addresses. Pure string work (config/ may not use node:net).
 */

const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/** Dotted-quad IPv4 without leading zeros (a leading zero reads as octal to some parsers). */
export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/** Counts the 16-bit groups of one side of "::"; -1 when malformed. An IPv4 tail counts as two (RFC 4291 §2.2). */
function countGroups(part: string, allowV4Tail: boolean): number {
  if (part === "") return 0;
  const groups = part.split(":");
  let n = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    if (allowV4Tail && i === groups.length - 1 && g.includes(".")) {
      if (!isIPv4(g)) return -1;
      n += 2;
    } else if (HEX_GROUP_RE.test(g)) n++;
    else return -1;
  }
  return n;
}

/** IPv6 text form of RFC 4291 §2.2 (with "::" compression and an IPv4 tail; no zone id). */
export function isIPv6(s: string): boolean {
  const dbl = s.indexOf("::");
  if (dbl === -1) return countGroups(s, true) === 8;
  if (s.indexOf("::", dbl + 1) !== -1) return false;
  const head = countGroups(s.slice(0, dbl), false);
  const tail = countGroups(s.slice(dbl + 2), true);
  return head >= 0 && tail >= 0 && head + tail <= 7;
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

/** "10.0.0.0/8", "::1/128", or a bare address (→ /32 or /128); null when not a CIDR block. */
export function normalizeCidr(s: string): string | null {
  const slash = s.indexOf("/");
  const ip = slash === -1 ? s : s.slice(0, slash);
  const max = isIPv4(ip) ? 32 : isIPv6(ip) ? 128 : -1;
  if (max === -1) return null;
  if (slash === -1) return `${ip}/${max}`;
  const len = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) return null;
  return `${ip}/${Number(len)}`;
}

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A host name of RFC 1123 §2.1 (letters, digits, hyphens; labels ≤ 63 octets, name ≤ 253). IDNs as A-labels. */
export function isDomainName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  for (const label of s.split(".")) if (!LABEL_RE.test(label)) return false;
  return true;
}

/**
 * A DKIM selector (RFC 6376 §3.1: sub-domain syntax); "_" is allowed as DNS allows it in labels. It also names
 * the key file DATA/dkim/<domain>/<selector>.key, so no "/" and no leading dot can get in.
 */
export function isSelector(s: string): boolean {
  return s.length <= 253 && /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/.test(s);
}

// Dot-atom local part (RFC 5321 §4.1.2), with UTF-8 allowed by RFC 6531 §3.3; quoted local parts are not needed
// in an operator's config.
const LOCAL_PART_RE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+)*$/u;

/** local@domain, local part at most 64 octets (RFC 5321 §4.5.3.1.1). */
export function isAddress(s: string): boolean {
  const at = s.lastIndexOf("@");
  if (at <= 0) return false;
  const local = s.slice(0, at);
  return utf8Length(local) <= 64 && LOCAL_PART_RE.test(local) && isDomainName(s.slice(at + 1));
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * "host:port" or "[ipv6]:port" → parts (brackets removed); null when malformed. host is an IP or a domain name;
 * port is 1..65535, or 0..65535 with allowZero (an ephemeral port, for tests).
 */
export function splitHostPort(s: string, allowZero = false): HostPort | null {
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]:");
    if (close === -1) return null;
    host = s.slice(1, close);
    if (!isIPv6(host)) return null;
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon === -1) return null;
    host = s.slice(0, colon);
    if (!isIPv4(host) && !isDomainName(host)) return null;
    portText = s.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowZero)) return null;
  return { host, port };
}

/** A DNS server: "ip", "ip:port" or "[ipv6]:port" (the forms node:dns setServers takes). */
export function isDnsServer(s: string): boolean {
  if (isIP(s)) return true;
  const hp = splitHostPort(s);
  return hp !== null && isIP(hp.host);
}
