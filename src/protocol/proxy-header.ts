/**
 * The PROXY protocol header (haproxy doc/proxy-protocol.txt, versions 1 and 2) that a load balancer sends before
 * any byte of the client's: an incremental reader fed the connection's first chunks. Pure and bounded: it keeps
 * at most the v1 line (107 bytes) or the v2 fixed part and address block (16 + 216 bytes); TLVs are skipped
 * without being stored, and a v2 header longer than PROXY_V2_MAX_LENGTH is refused. It decides as early as the
 * bytes allow (§2.1: "abort the connection as soon as possible"), so a client that speaks SMTP first is refused
 * at its first byte. The bytes after the header are handed back untouched (they may be a TLS ClientHello).
 */

/** §2.1: the longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses and ports). */
export const PROXY_V1_MAX = 107;
/** Our bound on the v2 length field (addresses + TLVs); the spec allows 65535, no sender we know comes near. */
export const PROXY_V2_MAX_LENGTH = 4096;
/** The most bytes a header can take before the reader has decided: the larger of the two versions. */
export const PROXY_HEADER_MAX = 16 + PROXY_V2_MAX_LENGTH;

/** §2.2: the v2 signature. */
const SIG_V2 = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** "PROXY " */
const SIG_V1 = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];
/** v2 address blocks by family (§2.2): INET 2×4 + 2×2, INET6 2×16 + 2×2, UNIX 2×108. */
const V2_ADDR_LEN = [0, 12, 36, 216];

export type ProxyHeaderResult =
  /** Not decided yet: feed more bytes. */
  | { kind: "more" }
  /** The client's address and port, from the header; `rest` = the bytes after it. */
  | { kind: "proxied"; version: 1 | 2; address: string; port: number; rest: Uint8Array }
  /**
   * A valid header that names no client: v2 LOCAL (the proxy's own health check), v1 UNKNOWN, or a v2 family or
   * protocol that is not TCP over IP. The spec says to use the real connection's endpoints.
   */
  | { kind: "local"; version: 1 | 2; rest: Uint8Array }
  | { kind: "error"; reason: string };

const MORE: ProxyHeaderResult = { kind: "more" };
const EMPTY = new Uint8Array(0);

type Phase = "start" | "v1" | "v2" | "v2-skip" | "done";

export class ProxyHeaderReader {
  private phase: Phase = "start";
  /** The bytes kept: the v1 line so far, or the v2 fixed part + address block. */
  private buf = new Uint8Array(16 + 216);
  private len = 0;
  /** v2: the length field, and how many TLV bytes are still to skip. */
  private v2Length = 0;
  private skip = 0;
  private decided: ProxyHeaderResult | null = null;
  /** Bytes of input taken so far (never more than PROXY_HEADER_MAX before a decision). */
  consumed = 0;

  /** Feed the next chunk. Once a result other than "more" is returned, the reader is done and keeps returning it. */
  push(chunk: Uint8Array): ProxyHeaderResult {
    if (this.decided !== null) return this.decided;
    let i = 0;
    while (i < chunk.length) {
      switch (this.phase) {
        case "start": {
          const b = chunk[i]!;
          if (b === SIG_V1[0]) this.phase = "v1";
          else if (b === SIG_V2[0]) this.phase = "v2";
          else return this.fail("no PROXY header");
          break;
        }
        case "v1": {
          const b = chunk[i++]!;
          this.consumed++;
          const at = this.len;
          this.buf[this.len++] = b;
          if (at < SIG_V1.length && b !== SIG_V1[at]) return this.fail("no PROXY header");
          if (b === 0x0a) {
            if (at === 0 || this.buf[at - 1] !== 0x0d) return this.fail("v1 line ends in a bare LF");
            const r = parseV1(this.buf.subarray(0, at - 1));
            return this.finish(r, chunk.subarray(i));
          }
          if (this.len >= PROXY_V1_MAX) return this.fail("v1 line longer than 107 bytes");
          break;
        }
        case "v2": {
          const b = chunk[i++]!;
          this.consumed++;
          const at = this.len;
          this.buf[this.len++] = b;
          if (at < 12 && b !== SIG_V2[at]) return this.fail("no PROXY header");
          if (at === 12) {
            if (b >> 4 !== 2) return this.fail("v2 version is not 2");
            if ((b & 0x0f) > 1) return this.fail("v2 command is neither LOCAL nor PROXY");
          } else if (at === 13) {
            if (b >> 4 > 3 || (b & 0x0f) > 2) return this.fail("v2 family or protocol unassigned");
          } else if (at === 15) {
            this.v2Length = (this.buf[14]! << 8) | b;
            if (this.v2Length > PROXY_V2_MAX_LENGTH) return this.fail("v2 header too long");
            const cmd = this.buf[12]! & 0x0f;
            const need = cmd === 1 ? V2_ADDR_LEN[this.buf[13]! >> 4]! : 0;
            if (this.v2Length < need) return this.fail("v2 length shorter than its address block");
          }
          if (this.len >= 16) {
            const cmd = this.buf[12]! & 0x0f;
            const need = cmd === 1 ? V2_ADDR_LEN[this.buf[13]! >> 4]! : 0;
            if (this.len === 16 + need) {
              this.skip = this.v2Length - need;
              this.phase = "v2-skip";
              if (this.skip === 0) return this.finish(decodeV2(this.buf), chunk.subarray(i));
            }
          }
          break;
        }
        case "v2-skip": {
          // TLVs (§2.2.x) carry nothing we use; skip them without keeping them.
          const n = Math.min(this.skip, chunk.length - i);
          i += n;
          this.consumed += n;
          this.skip -= n;
          if (this.skip === 0) return this.finish(decodeV2(this.buf), chunk.subarray(i));
          break;
        }
        case "done":
          return this.decided ?? MORE;
      }
    }
    return MORE;
  }

  private fail(reason: string): ProxyHeaderResult {
    this.phase = "done";
    this.decided = { kind: "error", reason };
    this.buf = EMPTY;
    return this.decided;
  }

  private finish(r: Decoded, rest: Uint8Array): ProxyHeaderResult {
    this.phase = "done";
    this.buf = EMPTY;
    this.decided =
      r.kind === "error"
        ? r
        : r.kind === "local"
          ? { kind: "local", version: r.version, rest }
          : { kind: "proxied", version: r.version, address: r.address, port: r.port, rest };
    return this.decided;
  }
}

type Decoded =
  | { kind: "proxied"; version: 1 | 2; address: string; port: number }
  | { kind: "local"; version: 1 | 2 }
  | { kind: "error"; reason: string };

/** "PROXY UNKNOWN" */
const UNKNOWN = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20, 0x55, 0x4e, 0x4b, 0x4e, 0x4f, 0x57, 0x4e];

function startsWith(b: Uint8Array, prefix: number[]): boolean {
  if (b.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[i] !== prefix[i]) return false;
  return true;
}

/** §2.1: "PROXY TCP4|TCP6 src dst sport dport" (CRLF removed), or "PROXY UNKNOWN" and anything. */
function parseV1(line: Uint8Array): Decoded {
  // §2.1: after "UNKNOWN" the receiver "must ignore anything presented before the CRLF".
  if (startsWith(line, UNKNOWN) && (line.length === UNKNOWN.length || line[UNKNOWN.length] === 0x20)) {
    return { kind: "local", version: 1 };
  }
  let text = "";
  for (const b of line) {
    if (b < 0x20 || b > 0x7e) return { kind: "error", reason: "v1 line has a byte outside printable US-ASCII" };
    text += String.fromCharCode(b);
  }
  const parts = text.split(" ");
  if (parts.length !== 6) return { kind: "error", reason: "v1 line does not have six fields" };
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  let srcBytes: Uint8Array | null;
  let dstBytes: Uint8Array | null;
  if (proto === "TCP4") {
    srcBytes = parseIPv4(src);
    dstBytes = parseIPv4(dst);
  } else if (proto === "TCP6") {
    srcBytes = parseIPv6(src);
    dstBytes = parseIPv6(dst);
  } else {
    return { kind: "error", reason: "v1 protocol is not TCP4, TCP6 or UNKNOWN" };
  }
  if (srcBytes === null || dstBytes === null) return { kind: "error", reason: `v1 address is not ${proto === "TCP4" ? "IPv4" : "IPv6"}` };
  const sp = parsePort(sport);
  if (sp === null || parsePort(dport) === null) return { kind: "error", reason: "v1 port is not 0..65535" };
  return { kind: "proxied", version: 1, address: formatIp(srcBytes), port: sp };
}

function decodeV2(h: Uint8Array): Decoded {
  if ((h[12]! & 0x0f) === 0) return { kind: "local", version: 2 }; // LOCAL: the real endpoints
  const fam = h[13]! >> 4;
  const proto = h[13]! & 0x0f;
  // §2.2: a receiver falls back to UNSPEC (the real endpoints) for combinations it does not support; SMTP runs
  // over TCP, so only STREAM over INET/INET6 names a client.
  if (proto !== 1 || (fam !== 1 && fam !== 2)) return { kind: "local", version: 2 };
  if (fam === 1) return { kind: "proxied", version: 2, address: formatIp(h.subarray(16, 20)), port: (h[24]! << 8) | h[25]! };
  return { kind: "proxied", version: 2, address: formatIp(h.subarray(16, 32)), port: (h[48]! << 8) | h[49]! };
}

/** §2.1: exactly four decimal numbers 0..255, no leading zeros. */
function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = parseDecimal(parts[i]!, 3);
    if (n === null || n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** Decimal without leading zeros ("0" itself allowed), at most `digits` digits. */
function parseDecimal(s: string, digits: number): number | null {
  if (s.length === 0 || s.length > digits || (s.length > 1 && s[0] === "0")) return null;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return null;
    n = n * 10 + c;
  }
  return n;
}

function parsePort(s: string): number | null {
  const n = parseDecimal(s, 5);
  return n === null || n > 65535 ? null : n;
}

/** RFC 4291 §2.2 text forms: 1–4 hex digits per group, at most one "::", an optional dotted IPv4 tail. */
function parseIPv6(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 45) return null;
  const out = new Uint8Array(16);
  let tail: Uint8Array | null = null;
  let body = s;
  if (s.includes(".")) {
    const c = s.lastIndexOf(":");
    tail = parseIPv4(s.slice(c + 1));
    if (tail === null) return null;
    body = s.slice(0, c + 1) + "0:0";
  }
  const halves = body.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (h: string): string[] => (h === "" ? [] : h.split(":"));
  const head = groupsOf(halves[0]!);
  const back = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const total = head.length + back.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return null;
  const groups = [...head, ...new Array<string>(8 - total).fill("0"), ...back];
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  if (tail !== null) out.set(tail, 12);
  return out;
}

/**
 * The text form the rest of the server uses: dotted IPv4; IPv6 per RFC 5952 (lower case, the longest run of two
 * or more zero groups as "::"). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is given as its IPv4 address, as the
 * transports report a dual-stack peer, so that per-IP limits and IPv4 relay.networks see one address.
 */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false;
  if (mapped) return formatIp(b.subarray(12, 16));
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}
