/**
 * What a lookup answers. One result shape for every record type, so callers (routing, SPF, DKIM, DNSBL, DANE)
 * switch on `status` and never on error strings.
 */

/** The record types the resolver asks for; each maps to one record shape below. */
export type RecordType = "A" | "AAAA" | "MX" | "TXT" | "PTR" | "TLSA" | "CNAME";

export interface MxRecord {
  /** Lower-case host name without the trailing dot; "." for the null MX of RFC 7505. */
  exchange: string;
  preference: number;
}

/** RFC 6698 §2.1 fields; `data` is the certificate association data, as bytes. */
export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Uint8Array;
}

/** The shape of one record of each type. TXT: the character-strings of ONE record joined (RFC 7208 §3.3). */
export interface RecordOf {
  A: string;
  AAAA: string;
  MX: MxRecord;
  TXT: string;
  PTR: string;
  TLSA: TlsaRecord;
  CNAME: string;
}

/**
 * - ok: records of the type exist (at the name, or at the end of the CNAME chain the answer gave).
 * - nxdomain: RCODE 3, the name does not exist (RFC 1035 §4.1.1, RFC 8020).
 * - nodata: the name exists but has no record of this type (RFC 2308 §2.2).
 * - servfail: every server failed: SERVFAIL, REFUSED, a malformed answer, a closed TCP connection.
 * - timeout: no server answered in time.
 * nxdomain and nodata are answers (permanent for this TTL); servfail and timeout are temporary.
 */
export type DnsStatus = "ok" | "nxdomain" | "nodata" | "servfail" | "timeout";

export interface DnsResult<T extends RecordType = RecordType> {
  status: DnsStatus;
  /** Empty unless status is "ok". Records are kept separate (one TXT record = one string). */
  records: Array<RecordOf[T]>;
  /** The AD bit of the answer (RFC 4035 §3.2.3): the server validated it with DNSSEC. False on failures. */
  ad: boolean;
  /** Seconds this answer stays valid (what is left of it when it came from the cache); 0 on failures. */
  ttl: number;
  /** The CNAME chain the answer went through from the asked name, in order (lower case, no trailing dot). */
  cnames: string[];
}

/** The port routing, checks and DNSBL code take: one method, easy to hand a resolver pointed at a test server. */
export interface DnsLookup {
  lookup<T extends RecordType>(name: string, type: T, opts?: LookupOptions): Promise<DnsResult<T>>;
}

export interface LookupOptions {
  /** Charged once per lookup (cached or not); when spent, lookup rejects with LookupLimitError. */
  budget?: LookupBudget;
}

/**
 * A count of lookups a caller may still make, e.g. SPF's limit of 10 DNS-querying terms (RFC 7208 §4.6.4).
 * A plain counter: share one instance across the lookups of one evaluation.
 */
export class LookupBudget {
  private left: number;
  constructor(readonly limit: number) {
    this.left = limit;
  }
  get remaining(): number {
    return this.left;
  }
  /** Takes one lookup; throws LookupLimitError when none is left. */
  spend(): void {
    if (this.left <= 0) throw new LookupLimitError(this.limit);
    this.left--;
  }
}

export class LookupLimitError extends Error {
  constructor(readonly limit: number) {
    super(`DNS lookup limit of ${limit} reached`);
    this.name = "LookupLimitError";
  }
}
