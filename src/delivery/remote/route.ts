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
import { isIP } from "node:net";
import { mergeAddresses, Resolver, type DnsLookup, type DnsResult } from "../../dns/index.ts";
import type { ClientTlsPolicy } from "./smtp-client.ts";

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
}

export interface Hop {
  /** Host name (SNI, Remote-MTA) and, when known, its addresses; empty = let the system resolve `name`. */
  name: string;
  addresses: string[];
  port: number;
}

/** Where one domain's mail goes this attempt. `key` names the destination for connection reuse and limits. */
export type Destination =
  | { kind: "hops"; key: string; hops: Hop[]; tls: ClientTlsPolicy; smarthost: boolean }
  | { kind: "failed"; reply: string }
  | { kind: "deferred"; reply: string };

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
  constructor(
    private readonly s: RouteSettings,
    dns?: DnsLookup,
  ) {
    this.dns = dns ?? new Resolver({ servers: s.dnsServers, timeoutMs: s.dnsTimeoutMs ?? 5000, attempts: 2 });
  }

  async route(domain: string): Promise<Destination> {
    const d = domain.toLowerCase();
    return this.fixedRoute(d) ?? this.mx(d);
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
      if (hp === null) return { kind: "deferred", reply: `451 4.3.5 bad relay.routes entry for ${d}: ${mapped}` };
      return { kind: "hops", key: `route:${hp.host}:${hp.port}`, hops: [this.hop(hp.host, hp.port)], tls: "opportunistic", smarthost: false };
    }
    if (this.s.smarthost !== "") {
      const hp = splitHostPort(this.s.smarthost);
      if (hp === null) return { kind: "deferred", reply: `451 4.3.5 bad relay.smarthost: ${this.s.smarthost}` };
      const tls: ClientTlsPolicy = this.s.smarthostTls === "starttls" ? "required" : this.s.smarthostTls;
      return { kind: "hops", key: `smarthost:${hp.host}:${hp.port}`, hops: [this.hop(hp.host, hp.port)], tls, smarthost: true };
    }
    return null;
  }

  private hop(host: string, port: number): Hop {
    return { name: host, addresses: isIP(host) ? [host] : [], port };
  }

  private async mx(domain: string): Promise<Destination> {
    const mx = await this.dns.lookup(domain, "MX");
    if (mx.status === "nxdomain") return { kind: "failed", reply: `550 5.1.2 ${domain} does not exist (no such domain)` };
    if (mx.status === "timeout" || mx.status === "servfail") return lookupFailed(`MX of ${domain}`, mx);
    const records = mx.records.map((r) => ({ exchange: r.exchange, priority: r.preference }));
    const isNull = (r: { exchange: string }) => r.exchange === "." || r.exchange === "";
    if (records.length > 0 && records.every(isNull)) {
      return { kind: "failed", reply: `556 5.1.10 ${domain} does not accept mail (null MX, RFC 7505)` };
    }
    // NODATA: no MX at all, the domain itself is the implicit MX (RFC 5321 §5.1).
    const names = records.length > 0 ? orderMx(records.filter((r) => !isNull(r))).map((r) => r.exchange) : [domain];
    const hops: Hop[] = [];
    let lastFailure: DnsResult | null = null;
    for (const name of names) {
      const host = name.replace(/\.$/, "").toLowerCase();
      const got = await this.addresses(host);
      if (got.status === "ok") hops.push({ name: host, addresses: got.records, port: this.s.mxPort });
      else if (got.status === "timeout" || got.status === "servfail") lastFailure = got;
    }
    if (hops.length > 0) return { kind: "hops", key: `mx:${domain}`, hops, tls: "opportunistic", smarthost: false };
    if (lastFailure !== null) return lookupFailed(`the addresses of the mail hosts of ${domain}`, lastFailure);
    if (records.length === 0) {
      return { kind: "failed", reply: `550 5.1.2 ${domain} has no MX and no A/AAAA record` };
    }
    return { kind: "failed", reply: `550 5.4.4 no address for the mail hosts of ${domain}` };
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
  return { kind: "deferred", reply: `451 4.4.3 DNS lookup of ${what} failed: ${r.status}` };
}
