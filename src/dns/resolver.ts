/**
 * The stub resolver: asks the configured recursive servers (in order, each try on a fresh UDP socket, TCP after a
 * truncated answer), caches answers for their TTL and negative answers per RFC 2308, and lets identical
 * concurrent lookups share one query. Built once per thread from `[dns]`; every DNS question of ringmta goes
 * through one of these (routing, checks, DNSBL).
 */
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import { TtlCache } from "./cache.ts";
import { resolveServers } from "./servers.ts";
import { tcpExchange, udpExchange, type Server } from "./transport.ts";
import { buildQuery, canonicalName, DEFAULT_UDP_PAYLOAD, interpret, type Reply } from "./wire.ts";
import type { DnsLookup, DnsResult, LookupOptions, RecordType } from "./types.ts";

export interface ResolverOptions {
  /** `[dns] servers`: "ip", "ip:port" or "[ipv6]:port"; empty = the nameserver lines of resolv.conf. */
  servers?: readonly string[];
  /** The resolv.conf to read when `servers` is empty (tests); default /etc/resolv.conf. */
  resolvConf?: string;
  /** How long one server is given to answer one try; default 2000 ms. */
  timeoutMs?: number;
  /** Rounds over the server list (RFC 1035 §7.2 retransmission); default 2. */
  attempts?: number;
  /** EDNS0 UDP payload size we advertise; default 1232 (see wire.ts). */
  udpPayload?: number;
  /** Cache bound: at most this many answers (positive and negative) are kept; default 10 000 (LRU). */
  cacheEntries?: number;
  /** TTL clamps for positive answers, seconds; defaults 0 and 86 400 (one day). */
  minTtl?: number;
  maxTtl?: number;
  /** Cap on negative caching, seconds; default 900 (RFC 2308 §5 suggests 1–3 hours at most; mail retries sooner). */
  maxNegativeTtl?: number;
  /** Clock for the cache (tests). */
  now?: () => number;
}

export const RESOLVER_DEFAULTS = {
  timeoutMs: 2000,
  attempts: 2,
  cacheEntries: 10_000,
  minTtl: 0,
  maxTtl: 86_400,
  maxNegativeTtl: 900,
} as const;

/** How long a server that timed out is asked last (see Resolver.order). */
const DEAD_MS = 30_000;

/**
 * RFC 1035 §2.3.4: 255 octets on the wire (253 characters in text), labels of 1–63 octets. Any octet may be in a
 * label (RFC 2181 §11; SPF macros expand to names with spaces, RFC 7208 §7.3); control characters are refused: no
 * name we ask for holds one, and they are what an injection would try.
 */
function encodable(name: string): boolean {
  if (name === ".") return true;
  if (name.length === 0 || name.length > 253 || /[\x00-\x1f\x7f]/.test(name)) return false;
  return name.split(".").every((l) => l.length > 0 && Buffer.byteLength(l) <= 63);
}

export class Resolver implements DnsLookup {
  readonly servers: readonly Server[];
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly udpPayload: number;
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly maxNegativeTtl: number;
  private readonly now: () => number;
  private readonly cache: TtlCache<DnsResult>;
  private readonly inflight = new Map<string, Promise<DnsResult>>();
  /** When each server (by index) last failed to answer; such a server is asked after the others for a while. */
  private readonly lastTimeout: number[];

  constructor(opts: ResolverOptions = {}) {
    this.servers = resolveServers(opts.servers ?? [], opts.resolvConf);
    this.timeoutMs = opts.timeoutMs ?? RESOLVER_DEFAULTS.timeoutMs;
    this.attempts = Math.max(1, opts.attempts ?? RESOLVER_DEFAULTS.attempts);
    this.udpPayload = opts.udpPayload ?? DEFAULT_UDP_PAYLOAD;
    this.minTtl = opts.minTtl ?? RESOLVER_DEFAULTS.minTtl;
    this.maxTtl = opts.maxTtl ?? RESOLVER_DEFAULTS.maxTtl;
    this.maxNegativeTtl = opts.maxNegativeTtl ?? RESOLVER_DEFAULTS.maxNegativeTtl;
    this.now = opts.now ?? Date.now;
    this.cache = new TtlCache(opts.cacheEntries ?? RESOLVER_DEFAULTS.cacheEntries, this.now);
    this.lastTimeout = this.servers.map(() => -Infinity);
  }

  /**
   * The records of `type` at `name`. Never rejects, except with LookupLimitError when `opts.budget` is spent
   * (checked first: a cached answer counts as a lookup too, as SPF counts terms, not packets).
   */
  lookup<T extends RecordType>(name: string, type: T, opts: LookupOptions = {}): Promise<DnsResult<T>> {
    try {
      opts.budget?.spend();
    } catch (err) {
      return Promise.reject(err);
    }
    const qname = canonicalName(name);
    const key = `${type} ${qname}`;
    // The cache first: only names that could be asked are in it.
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      const left = Math.max(0, Math.ceil((hit.expires - this.now()) / 1000));
      return Promise.resolve({ ...hit.value, records: [...hit.value.records], cnames: [...hit.value.cnames], ttl: left } as DnsResult<T>);
    }
    // A name that cannot be put in a query cannot exist (RFC 1035 §2.3.4); no server needs asking.
    if (!encodable(qname)) return Promise.resolve(result("nxdomain"));
    let p = this.inflight.get(key);
    if (p === undefined) {
      p = this.query(qname, type).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p.then((r) => ({ ...r, records: [...r.records], cnames: [...r.cnames] }) as DnsResult<T>);
  }

  /** A and AAAA of `name`, IPv4 first (both asked at once); ok when either has addresses. */
  async addresses(name: string, opts: LookupOptions = {}): Promise<DnsResult<"A" | "AAAA">> {
    if (isIP(name)) return { status: "ok", records: [name], ad: false, ttl: 0, cnames: [] };
    const [v4, v6] = await Promise.all([this.lookup(name, "A", opts), this.lookup(name, "AAAA", opts)]);
    return mergeAddresses(v4, v6);
  }

  clearCache(): void {
    this.cache.clear();
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * The servers in the order to ask them: as configured, except that one that timed out within DEAD_MS goes after
   * the others, so a dead first server does not cost every lookup a timeout (the system resolver would pay it
   * each time; a recursive resolver keeps such server state in its infrastructure cache).
   */
  private order(): number[] {
    const t = Date.now();
    const idx = this.servers.map((_, i) => i);
    const dead = (i: number) => t - this.lastTimeout[i] < DEAD_MS;
    return [...idx.filter((i) => !dead(i)), ...idx.filter(dead)];
  }

  private async query(name: string, type: RecordType): Promise<DnsResult> {
    let failed = false;
    const order = this.order();
    for (let round = 0; round < this.attempts; round++) {
      for (const i of order) {
        const reply = await this.ask(this.servers[i], name, type);
        if (reply === "timeout") {
          this.lastTimeout[i] = Date.now();
          continue;
        }
        if (reply.kind !== "answer") {
          failed = true;
          continue;
        }
        return this.store(name, type, reply);
      }
    }
    // Nobody gave an answer: temporary either way; "servfail" when some server did speak but could not answer.
    return result(failed ? "servfail" : "timeout");
  }

  /** One server, one try: UDP with EDNS0, TCP after TC, once more without EDNS after FORMERR (RFC 6891 §7). */
  private async ask(server: Server, name: string, type: RecordType): Promise<Reply | "timeout"> {
    let edns = true;
    for (;;) {
      const q = buildQuery(name, type, edns, this.udpPayload);
      let ex = await udpExchange(server, q, this.timeoutMs);
      if (ex.kind === "timeout") return "timeout";
      if (ex.kind === "error") return { kind: "failed", why: ex.why, formerr: false };
      let reply = interpret(q, ex.packet);
      if (reply.kind === "truncated") {
        ex = await tcpExchange(server, q, this.timeoutMs);
        if (ex.kind !== "packet") return { kind: "failed", why: ex.kind === "error" ? ex.why : "tcp timeout", formerr: false };
        reply = interpret(q, ex.packet);
        if (reply.kind === "truncated") return { kind: "failed", why: "truncated over TCP", formerr: false };
      }
      if (reply.kind === "failed" && reply.formerr && edns) {
        edns = false;
        continue;
      }
      return reply;
    }
  }

  private store(name: string, type: RecordType, reply: Extract<Reply, { kind: "answer" }>): DnsResult {
    let ttl: number;
    if (reply.status === "ok") ttl = Math.min(this.maxTtl, Math.max(this.minTtl, reply.ttl));
    else ttl = reply.negativeTtl === null ? 0 : Math.min(this.maxNegativeTtl, Math.max(0, reply.negativeTtl));
    const r: DnsResult = { status: reply.status, records: reply.records as DnsResult["records"], ad: reply.ad, ttl, cnames: reply.cnames };
    this.cache.set(`${type} ${name}`, r, ttl);
    return r;
  }
}

function result<T extends RecordType>(status: "nxdomain" | "servfail" | "timeout"): DnsResult<T> {
  return { status, records: [], ad: false, ttl: 0, cnames: [] };
}

/**
 * Combines the A and AAAA answers of one name: addresses when either has some; otherwise a failure of either
 * wins (the name may have addresses we could not learn), then nxdomain, then nodata. AD only when both carry it.
 */
export function mergeAddresses(v4: DnsResult<"A">, v6: DnsResult<"AAAA">): DnsResult<"A" | "AAAA"> {
  const records = [...v4.records, ...v6.records];
  const ad = v4.ad && v6.ad;
  if (records.length > 0) {
    const ttls = [v4, v6].filter((r) => r.records.length > 0).map((r) => r.ttl);
    return { status: "ok", records, ad, ttl: Math.min(...ttls), cnames: v4.cnames.length > 0 ? v4.cnames : v6.cnames };
  }
  for (const s of ["timeout", "servfail", "nxdomain"] as const) {
    if (v4.status === s || v6.status === s) return { status: s, records: [], ad: s === "nxdomain" ? ad : false, ttl: s === "nxdomain" ? Math.min(v4.ttl, v6.ttl) : 0, cnames: [] };
  }
  return { status: "nodata", records: [], ad, ttl: Math.min(v4.ttl, v6.ttl), cnames: v4.cnames };
}

/**
 * The reverse-lookup name of an address (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5 ip6.arpa), or the name to ask
 * a DNS list under `zone` (RFC 5782 §2.1); null when `ip` is not an address.
 */
export function reverseName(ip: string, zone?: string): string | null {
  const v = isIP(ip);
  if (v === 4) return `${ip.split(".").reverse().join(".")}.${zone ?? "in-addr.arpa"}`;
  if (v !== 6) return null;
  const [head, tail = ""] = ip.toLowerCase().split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const expand = (groups: string[]) => groups.flatMap((g) => (g.includes(".") ? ipv4Groups(g) : [g]));
  const he = expand(h);
  const te = ip.includes("::") ? expand(t) : [];
  const groups = [...he, ...Array(8 - he.length - te.length).fill("0"), ...te];
  const nibbles = groups.map((g) => g.padStart(4, "0")).join("").split("").reverse().join(".");
  return `${nibbles}.${zone ?? "ip6.arpa"}`;
}

function ipv4Groups(v4: string): string[] {
  const b = v4.split(".").map(Number);
  return [((b[0] << 8) | b[1]).toString(16), ((b[2] << 8) | b[3]).toString(16)];
}
