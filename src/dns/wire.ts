/**
 * DNS messages on the wire through dns-packet: the query we send and what an answer means for it. Pure: no I/O.
 */
import { randomInt } from "node:crypto";
import { Buffer } from "node:buffer";
import * as packet from "dns-packet";
import type { MxRecord, RecordOf, RecordType, TlsaRecord } from "./types.ts";

/**
 * EDNS0 payload we advertise (RFC 6891 §6.2.5): 1232 octets fits an IPv6 minimum MTU without fragmentation
 * (the DNS Flag Day 2020 value); larger answers come with TC and are asked again over TCP.
 */
export const DEFAULT_UDP_PAYLOAD = 1232;

export interface Query {
  id: number;
  name: string;
  type: RecordType;
  bytes: Buffer;
}

/** Lower case, no trailing dot: the form names are compared and cached in (RFC 4343: case-insensitive). */
export function canonicalName(name: string): string {
  const n = name.toLowerCase();
  return n.length > 1 && n.endsWith(".") ? n.slice(0, -1) : n;
}

/**
 * A recursive query (RD) with a random id (RFC 5452 §9.2: the id and the source port are what a spoofer must
 * guess) and, unless `edns` is false, an OPT record with the DO bit (RFC 3225 §3) so that a validating server
 * sets AD on what it validated (RFC 4035 §3.2.3, RFC 6840 §5.8).
 */
export function buildQuery(name: string, type: RecordType, edns: boolean, payload = DEFAULT_UDP_PAYLOAD): Query {
  const id = randomInt(0, 65536);
  const qname = canonicalName(name);
  const bytes = packet.encode({
    type: "query",
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ type, class: "IN", name: qname }],
    additionals: edns ? [{ type: "OPT", name: ".", udpPayloadSize: payload, extendedRcode: 0, ednsVersion: 0, flags: packet.DNSSEC_OK, flag_do: true, options: [] }] : [],
  });
  return { id, name: qname, type, bytes };
}

/** What one server's answer means, before caching. */
export type Reply =
  | { kind: "answer"; status: "ok" | "nxdomain" | "nodata"; records: unknown[]; ad: boolean; ttl: number; negativeTtl: number | null; cnames: string[] }
  | { kind: "truncated" }
  /** The server cannot answer (SERVFAIL, REFUSED, NOTIMP) or sent something malformed: ask the next one. */
  | { kind: "failed"; why: string; formerr: boolean };

/**
 * Whether `buf` is the answer to `q`: at least a header with our id, QR set, and the same single question.
 * Anything else is ignored by the transport (RFC 5452 §9.1), so a spoofed or stray datagram cannot end a query.
 * Returns the decoded packet, "garbage" for bytes that carry our id but do not decode, or null (not ours).
 */
export function matchReply(q: Query, buf: Buffer): packet.DecodedPacket | "garbage" | null {
  if (buf.length < 12 || buf.readUInt16BE(0) !== q.id) return null;
  let p: packet.DecodedPacket;
  try {
    p = packet.decode(buf);
  } catch {
    return "garbage";
  }
  if (!p.flag_qr) return null;
  const question = p.questions?.[0];
  // A server may leave the question out of a FORMERR (RFC 6891 §7); then only the id ties it to us.
  if ((p.flags! & 0xf) === 1 && (p.questions?.length ?? 0) === 0) return p;
  if (p.questions?.length !== 1 || question === undefined) return null;
  if (question.type !== q.type || canonicalName(question.name) !== q.name) return null;
  return p;
}

/** Interprets a matched answer for `q` (RFC 1035 §4.1.1 RCODEs, RFC 2308 negative answers). */
export function interpret(q: Query, p: packet.DecodedPacket): Reply {
  if (p.flag_tc) return { kind: "truncated" };
  const rcode = p.flags! & 0xf;
  const ad = p.flag_ad;
  if (rcode !== 0 && rcode !== 3) return { kind: "failed", why: `rcode ${rcode}`, formerr: rcode === 1 };
  try {
    // Follow the CNAME chain from the asked name as the answer section gives it (RFC 1034 §3.6.2), at most 16 links
    // (a loop or a silly chain is a failure, like any malformed answer).
    const answers = (p.answers ?? []).filter((a) => a.type !== "OPT");
    let owner = q.name;
    const cnames: string[] = [];
    let ttl = Number.MAX_SAFE_INTEGER;
    for (;;) {
      if (q.type === "CNAME") break;
      const link = answers.find((a) => a.type === "CNAME" && canonicalName(a.name) === owner);
      if (link === undefined) break;
      if (cnames.length >= 16) return { kind: "failed", why: "CNAME chain too long", formerr: false };
      owner = canonicalName(String(link.data));
      if (cnames.includes(owner)) return { kind: "failed", why: "CNAME loop", formerr: false };
      cnames.push(owner);
      ttl = Math.min(ttl, (link as { ttl?: number }).ttl ?? 0);
    }
    const records: unknown[] = [];
    for (const a of answers) {
      if (a.type !== q.type || canonicalName(a.name) !== owner) continue;
      records.push(convert(q.type, (a as { data: unknown }).data));
      ttl = Math.min(ttl, (a as { ttl?: number }).ttl ?? 0);
    }
    if (records.length > 0) return { kind: "answer", status: "ok", records, ad, ttl, negativeTtl: null, cnames };
    // RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM) of the SOA in the authority section;
    // without one it is not cached at all.
    const soa = (p.authorities ?? []).find((a) => a.type === "SOA") as packet.SoaAnswer | undefined;
    const negativeTtl = soa === undefined ? null : Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
    return { kind: "answer", status: rcode === 3 ? "nxdomain" : "nodata", records: [], ad, ttl: 0, negativeTtl, cnames };
  } catch (err) {
    return { kind: "failed", why: `malformed answer: ${String(err)}`, formerr: false };
  }
}

function convert(type: RecordType, data: unknown): RecordOf[RecordType] {
  switch (type) {
    case "A":
    case "AAAA":
      return String(data);
    case "PTR":
    case "CNAME":
      return canonicalName(String(data));
    case "MX": {
      const mx = data as packet.MxData;
      return { exchange: mx.exchange === "." ? "." : canonicalName(mx.exchange), preference: mx.preference ?? 0 } satisfies MxRecord;
    }
    case "TXT": {
      // RFC 7208 §3.3, RFC 6376 §3.6.2.2: the strings of one record are concatenated without separator. Joined as
      // bytes first, so a UTF-8 sequence split across two strings survives; SPF/DKIM/DMARC values are ASCII anyway.
      const parts = (Array.isArray(data) ? data : [data]).map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(String(b))));
      return Buffer.concat(parts).toString("utf8");
    }
    case "TLSA": {
      const t = data as packet.TlsaData;
      return { usage: t.usage, selector: t.selector, matchingType: t.matchingType, data: new Uint8Array(t.certificate) } satisfies TlsaRecord;
    }
  }
}

