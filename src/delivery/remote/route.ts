/**
 * Where mail for a domain goes (CONTRACT "Guarantees": routing order): `relay.routes` (the transport map), then
 * `relay.smarthost`, then the domain's MX records (RFC 5321 §5.1) looked up through our dns/ resolver (a DnsLookup
 * port, built from `dns.servers` unless one is handed in).
 *
 * MX: sorted by preference, random order among equal preferences (§5.1), each host's A/AAAA asked through the same
 * resolver and every address tried in turn. The resolver tells NXDOMAIN from NODATA: NODATA for MX → the domain's
 * own A/AAAA as an implicit MX (§5.1); NXDOMAIN → the domain does not exist, a permanent failure. A timeout,
 * SERVFAIL or an unreadable answer is never taken for an absence: the mail is deferred. A null MX (RFC 7505 §3:
 * an MX "." of preference 0) means the domain accepts no mail: permanent failure 556 5.1.10 (RFC 7505 §4.2).
 */
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import { mergeAddresses, Resolver, type DnsLookup, type DnsResult, type TlsaRecord } from "../../dns/index.ts";
import { usableTlsa } from "./dane.ts";
import type { ClientTlsPolicy } from "./smtp-client.ts";
import type { StsPolicy, StsSource } from "./mta-sts.ts";
import { mxMatches } from "./mta-sts.ts";

export interface RouteSettings {
  /** Lower-case domain → "host:port". */
  routes: Record<string, string>;
  /** "host:port" or "". */
  smarthost: string;
  smarthostTls: "none" | "starttls" | "implicit";
  mxPort: number;
  /** "ip" or "ip:port"; empty = the system's resolver configuration. */
  dnsServers: string[];
  /** Per-query timeout for each server and try (two rounds over the servers); default 5 s, as a stub resolver's. */
  dnsTimeoutMs?: number;
  /** Honour DANE TLSA records of MX hosts (RFC 7672); default off (app/ passes relay.dane). */
  dane?: boolean;
}

/**
 * The authenticated TLS a hop demands (CONTRACT "Outbound TLS policy"); absent = opportunistic STARTTLS.
 * - dane: STARTTLS required; the certificate must match one of `tlsa` (empty: every record was unusable, RFC 7672
 *   §2.2: TLS is still mandatory, without authentication).
 * - mta-sts: STARTTLS required, the certificate verified (system CAs + relay.tls_ca) for the MX name (RFC 8461 §4.2).
 */
export type HopPolicy = { kind: "dane"; tlsa: TlsaRecord[] } | { kind: "mta-sts" };

/** Which policy decided a destination: metrics, logs and the text of a deferral name it. */
export type PolicyName = "dane" | "mta-sts" | "mta-sts-testing" | "none";

export interface Hop {
  /** Host name (SNI, Remote-MTA) and, when known, its addresses; empty = let the system resolve `name`. */
  name: string;
  addresses: string[];
  port: number;
  policy?: HopPolicy;
}

/** Where one domain's mail goes this attempt. `key` names the destination for connection reuse and limits. */
export type Destination =
  | {
      kind: "hops";
      key: string;
      hops: Hop[];
      tls: ClientTlsPolicy;
      smarthost: boolean;
      policy?: PolicyName;
      report?: PolicyReport;
      /** TLS-RPT: a failure that is the policy's, whatever the session (an MTA-STS policy that could not be had). */
      reportFailure?: string;
    }
  | Refusal;

/** The policy as TLS-RPT (RFC 8460 §4.4) names it: domain, type and policy-string. */
export interface PolicyReport {
  domain: string;
  type: "sts" | "tlsa";
  policyString: string[];
}

/** RFC 8460 §4.4: an MTA-STS policy-string is the policy's lines; a TLSA one, the records in presentation form. */
function stsPolicyString(p: StsPolicy): string[] {
  return ["version: STSv1", `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`];
}

function tlsaPolicyString(hops: Hop[]): string[] {
  const out: string[] = [];
  for (const h of hops) {
    if (h.policy?.kind !== "dane") continue;
    for (const r of h.policy.tlsa) out.push(`${r.usage} ${r.selector} ${r.matchingType} ${Buffer.from(r.data).toString("hex")}`);
  }
  return out.slice(0, 100);
}

/** No destination this attempt: an outcome of our own (RFC 3463 status; never a Remote-MTA, nothing was sent). */
export interface Refusal {
  kind: "failed" | "deferred";
  code: number;
  enhanced: string;
  text: string;
  /** The TLS policy that refused, when one did (`queue show` names it). */
  policy?: PolicyName;
  /** For TLS-RPT: the policy, and the RFC 8460 §4.3 result-type of this failure. */
  report?: PolicyReport & { failure: string; mxHost: string };
}

function refusal(kind: Refusal["kind"], code: number, enhanced: string, text: string): Refusal {
  return { kind, code, enhanced, text };
}

/** Bound on remembered config-only routes: with a smart host every domain is one, and domains come from senders. */
const FIXED_CACHE_MAX = 10_000;

export function splitHostPort(s: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (m === null) return null;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1], port } : null;
}

/** Fisher–Yates over each run of equal preference, after sorting by preference (RFC 5321 §5.1). */
export function orderMx(records: ReadonlyArray<{ exchange: string; priority: number }>, random = Math.random) {
  const sorted = [...records].sort((a, b) => a.priority - b.priority);
  for (let start = 0; start < sorted.length; ) {
    let end = start + 1;
    while (end < sorted.length && sorted[end].priority === sorted[start].priority) end++;
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(random() * (i - start + 1));
      [sorted[i], sorted[j]] = [sorted[j], sorted[i]];
    }
    start = end;
  }
  return sorted;
}

export class Router {
  private readonly dns: DnsLookup;
  /** Config-only destinations by lower-case domain (see fixedRoute). */
  private readonly fixed = new Map<string, Destination>();

  /** `dns`: the resolver to ask; by default one built from `dnsServers` (one per Router, so one per worker). */
  /** `sts`: where MTA-STS policies come from (the worker's cache); absent = MTA-STS off. */
  constructor(
    private readonly s: RouteSettings,
    dns?: DnsLookup,
    private readonly sts?: StsSource,
  ) {
    this.dns = dns ?? new Resolver({ servers: s.dnsServers, timeoutMs: s.dnsTimeoutMs ?? 5000, attempts: 2 });
  }

  /**
   * `ignorePolicy`: the message says `TLS-Required: No` (RFC 8689 §5): neither DANE nor MTA-STS is consulted, and
   * TLS is opportunistic.
   */
  async route(domain: string, ignorePolicy = false): Promise<Destination> {
    const d = domain.toLowerCase();
    return this.fixedRoute(d) ?? this.mx(d, ignorePolicy);
  }

  /**
   * The destination of a lower-case domain when the config alone decides it (relay.routes, then relay.smarthost),
   * else null (ask DNS). Config-only answers change only with a new config, which builds a new Router (SIGHUP), so
   * each is computed once per domain; callers only read the shared object.
   */
  fixedRoute(d: string): Destination | null {
    const hit = this.fixed.get(d);
    if (hit !== undefined) return hit;
    const dest = this.computeFixed(d);
    if (dest !== null && this.fixed.size < FIXED_CACHE_MAX) this.fixed.set(d, dest);
    return dest;
  }

  private computeFixed(d: string): Destination | null {
    const mapped = Object.hasOwn(this.s.routes, d) ? this.s.routes[d] : undefined;
    if (mapped !== undefined) {
      const hp = splitHostPort(mapped);
      if (hp === null) return refusal("deferred", 451, "4.3.5", `bad relay.routes entry for ${d}: ${mapped}`);
      return { kind: "hops", key: `route:${hp.host}:${hp.port}`, hops: [this.hop(hp.host, hp.port)], tls: "opportunistic", smarthost: false };
    }
    if (this.s.smarthost !== "") {
      const hp = splitHostPort(this.s.smarthost);
      if (hp === null) return refusal("deferred", 451, "4.3.5", `bad relay.smarthost: ${this.s.smarthost}`);
      const tls: ClientTlsPolicy = this.s.smarthostTls === "starttls" ? "required" : this.s.smarthostTls;
      return { kind: "hops", key: `smarthost:${hp.host}:${hp.port}`, hops: [this.hop(hp.host, hp.port)], tls, smarthost: true };
    }
    return null;
  }

  private hop(host: string, port: number): Hop {
    return { name: host, addresses: isIP(host) ? [host] : [], port };
  }

  private async mx(domain: string, ignorePolicy: boolean): Promise<Destination> {
    const mx = await this.dns.lookup(domain, "MX");
    if (mx.status === "nxdomain") return refusal("failed", 550, "5.1.2", `${domain} does not exist (no such domain)`);
    if (mx.status === "timeout" || mx.status === "servfail") return lookupFailed(`MX of ${domain}`, mx);
    const records = mx.records.map((r) => ({ exchange: r.exchange, priority: r.preference }));
    const isNull = (r: { exchange: string }) => r.exchange === "." || r.exchange === "";
    if (records.length > 0 && records.every(isNull)) {
      return refusal("failed", 556, "5.1.10", `${domain} does not accept mail (null MX, RFC 7505)`);
    }
    // NODATA: no MX at all, the domain itself is the implicit MX (RFC 5321 §5.1).
    const names = records.length > 0 ? orderMx(records.filter((r) => !isNull(r))).map((r) => r.exchange) : [domain];
    // The policy lookup runs beside the MX hosts' lookups; it is only used when no hop is DANE-secured.
    const stsPending = ignorePolicy ? undefined : this.sts?.policy(domain);
    // RFC 7672 §2.2.1: DANE applies to an MX host only when the MX RRset was validated (AD); for the implicit MX,
    // the domain's own address answer decides below.
    const mxSecure = records.length === 0 || mx.ad;
    const hops: Hop[] = [];
    let lastFailure: DnsResult | null = null;
    let tlsaFailure: string | null = null;
    let tlsaFailedHost = "";
    for (const name of names) {
      const host = name.replace(/\.$/, "").toLowerCase();
      const got = await this.addresses(host);
      if (got.status === "ok") {
        const hop: Hop = { name: host, addresses: got.records, port: this.s.mxPort };
        if (this.s.dane === true && !ignorePolicy && mxSecure && got.ad) {
          // RFC 7672 §2.2: TLSA at _<port>._tcp.<host> for the port we dial, trusted only when validated.
          const tlsa = await this.dns.lookup(`_${this.s.mxPort}._tcp.${host}`, "TLSA");
          if (tlsa.status === "ok" && tlsa.ad) hop.policy = { kind: "dane", tlsa: usableTlsa(tlsa.records) };
          else if (tlsa.status === "servfail" || tlsa.status === "timeout") {
            // §2.2: a failed (or bogus) TLSA lookup of a secure host: that host must not be used this time.
            tlsaFailure = `TLSA lookup of _${this.s.mxPort}._tcp.${host} failed: ${tlsa.status}`;
            tlsaFailedHost = host;
            continue;
          }
        }
        hops.push(hop);
      } else if (got.status === "timeout" || got.status === "servfail") lastFailure = got;
    }
    const sts = stsPending === undefined ? null : await stsPending;
    if (hops.length > 0) return this.withPolicy(domain, hops, sts);
    if (tlsaFailure !== null) {
      return {
        ...refusal("deferred", 451, "4.7.5", `${tlsaFailure} (DANE)`),
        policy: "dane",
        report: { domain, type: "tlsa", policyString: [], failure: "dnssec-invalid", mxHost: tlsaFailedHost },
      };
    }
    if (lastFailure !== null) return lookupFailed(`the addresses of the mail hosts of ${domain}`, lastFailure);
    if (records.length === 0) {
      return refusal("failed", 550, "5.1.2", `${domain} has no MX and no A/AAAA record`);
    }
    return refusal("failed", 550, "5.4.4", `no address for the mail hosts of ${domain}`);
  }

  /**
   * The destination for `hops`, with the policy that governs it: DANE where a hop has TLSA records (it wins over
   * MTA-STS, RFC 8461 §2), else MTA-STS `enforce` (only hosts matching the policy's mx patterns, each verified,
   * RFC 8461 §4.1), else opportunistic. The pool key names the policy: a connection opened under one policy is
   * never reused under a stricter one.
   */
  private withPolicy(domain: string, hops: Hop[], sts: StsPolicy | null): Destination {
    const base = { kind: "hops" as const, tls: "opportunistic" as const, smarthost: false };
    if (hops.some((h) => h.policy?.kind === "dane")) {
      const report: PolicyReport = { domain, type: "tlsa", policyString: tlsaPolicyString(hops) };
      return { ...base, key: `mx:${domain}:dane`, hops, policy: "dane", report };
    }
    if (sts !== null && sts.mode === "enforce") {
      const report: PolicyReport = { domain, type: "sts", policyString: stsPolicyString(sts) };
      const allowed = hops.filter((h) => mxMatches(sts.mx, h.name)).map((h): Hop => ({ ...h, policy: { kind: "mta-sts" } }));
      if (allowed.length === 0) {
        const text = `no MX host of ${domain} matches its MTA-STS policy (mx: ${sts.mx.slice(0, 5).join(", ")})`;
        return { ...refusal("deferred", 451, "4.7.5", text), policy: "mta-sts", report: { ...report, failure: "validation-failure", mxHost: hops[0].name } };
      }
      return { ...base, key: `mx:${domain}:mta-sts`, hops: allowed, policy: "mta-sts", report };
    }
    if (sts !== null && sts.mode === "testing") {
      const report: PolicyReport = { domain, type: "sts", policyString: stsPolicyString(sts) };
      return { ...base, key: `mx:${domain}`, hops, policy: "mta-sts-testing", report };
    }
    // A policy announced in DNS that could not be fetched (RFC 8461 §5: deliver as without one): TLS-RPT says so.
    const stsError = sts === null ? this.sts?.lastError?.(domain) : undefined;
    if (stsError !== undefined) {
      return { ...base, key: `mx:${domain}`, hops, report: { domain, type: "sts", policyString: [] }, reportFailure: stsError };
    }
    return { ...base, key: `mx:${domain}`, hops };
  }

  /** A and AAAA of `host`, IPv4 first; a failure of either with no address from the other is a failure. */
  private async addresses(host: string): Promise<DnsResult<"A" | "AAAA">> {
    if (isIP(host)) return { status: "ok", records: [host], ad: false, ttl: 0, cnames: [] };
    const [v4, v6] = await Promise.all([this.dns.lookup(host, "A"), this.dns.lookup(host, "AAAA")]);
    return mergeAddresses(v4, v6);
  }
}

/** A lookup that got no answer (timeout, SERVFAIL, garbage): temporary, the mail waits (RFC 5321 §4.5.4.1). */
function lookupFailed(what: string, r: DnsResult): Destination {
  return refusal("deferred", 451, "4.4.3", `DNS lookup of ${what} failed: ${r.status}`);
}
