/**
 * Where mail for a domain goes (CONTRACT "Guarantees": routing order): `relay.routes` (the transport map), then
 * `relay.smarthost`, then the domain's MX records (RFC 5321 §5.1) looked up through node:dns with `dns.servers`.
 *
 * MX: sorted by preference, random order among equal preferences (§5.1), each host's A/AAAA asked through the same
 * resolver and every address tried in turn. No MX → the domain's own A/AAAA as an implicit MX, found by asking:
 * Bun and Deno report "no MX record" and "no such domain" both as ENOTFOUND, so the error code cannot tell them
 * apart. A null MX (RFC 7505 §3: a single MX "." of preference 0, which node:dns returns as exchange "") means the
 * domain accepts no mail: permanent failure 556 5.1.10 (RFC 7505 §4.2).
 */
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
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
  /** Per-query timeout (two tries); default 5 s, as a stub resolver's. */
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
  | Refusal;

/** No destination this attempt: an outcome of our own (RFC 3463 status; never a Remote-MTA, nothing was sent). */
export interface Refusal {
  kind: "failed" | "deferred";
  code: number;
  enhanced: string;
  text: string;
}

function refusal(kind: Refusal["kind"], code: number, enhanced: string, text: string): Refusal {
  return { kind, code, enhanced, text };
}

/** Bound on remembered config-only routes: with a smart host every domain is one, and domains come from senders. */
const FIXED_CACHE_MAX = 10_000;

/** Errors that mean "the server says there is no such record or name" (as opposed to a lookup that failed). */
const ABSENT = new Set(["ENOTFOUND", "ENODATA", "NOTFOUND", "NODATA"]);

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
  private readonly resolver: Resolver;
  /** Config-only destinations by lower-case domain (see fixedRoute). */
  private readonly fixed = new Map<string, Destination>();

  constructor(private readonly s: RouteSettings) {
    this.resolver = new Resolver({ timeout: s.dnsTimeoutMs ?? 5000, tries: 2 });
    if (s.dnsServers.length > 0) this.resolver.setServers(s.dnsServers);
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

  private async mx(domain: string): Promise<Destination> {
    let records: Array<{ exchange: string; priority: number }>;
    try {
      records = await this.resolver.resolveMx(domain);
    } catch (err) {
      if (!ABSENT.has((err as NodeJS.ErrnoException).code ?? "")) return lookupFailed(`MX of ${domain}`, err);
      records = [];
    }
    const isNull = (r: { exchange: string }) => r.exchange === "" || r.exchange === ".";
    if (records.length > 0 && records.every(isNull)) {
      return refusal("failed", 556, "5.1.10", `${domain} does not accept mail (null MX, RFC 7505)`);
    }
    const names = records.length > 0 ? orderMx(records.filter((r) => !isNull(r))).map((r) => r.exchange) : [domain];
    const hops: Hop[] = [];
    let lastError: unknown = null;
    for (const name of names) {
      const host = name.replace(/\.$/, "").toLowerCase();
      const got = await this.addresses(host);
      if (got instanceof Error) lastError = got;
      else if (got.length > 0) hops.push({ name: host, addresses: got, port: this.s.mxPort });
    }
    if (hops.length > 0) return { kind: "hops", key: `mx:${domain}`, hops, tls: "opportunistic", smarthost: false };
    if (lastError !== null) return lookupFailed(`the addresses of the mail hosts of ${domain}`, lastError);
    if (records.length === 0) {
      return refusal("failed", 550, "5.1.2", `${domain} has no MX and no A/AAAA record (no such domain)`);
    }
    return refusal("failed", 550, "5.4.4", `no address for the mail hosts of ${domain}`);
  }

  /** A and AAAA of `host` (IPv4 first); [] when neither exists, an Error when a lookup failed. */
  private async addresses(host: string): Promise<string[] | Error> {
    if (isIP(host)) return [host];
    const [v4, v6] = await Promise.all([this.ask(() => this.resolver.resolve4(host)), this.ask(() => this.resolver.resolve6(host))]);
    if (v4 instanceof Error && v6 instanceof Error) return v4;
    return [...(v4 instanceof Error ? [] : v4), ...(v6 instanceof Error ? [] : v6)];
  }

  private async ask(q: () => Promise<string[]>): Promise<string[] | Error> {
    try {
      return await q();
    } catch (err) {
      if (ABSENT.has((err as NodeJS.ErrnoException).code ?? "")) return [];
      return err instanceof Error ? err : new Error(String(err));
    }
  }
}

function lookupFailed(what: string, err: unknown): Destination {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  return refusal("deferred", 451, "4.4.3", `DNS lookup of ${what} failed: ${code}`);
}
