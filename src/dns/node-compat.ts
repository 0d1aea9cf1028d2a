/**
 * Our resolver in the shape of node:dns/promises (`resolve(name, type)`, `resolveMx`, `resolveTxt`, …), for
 * libraries that take such a resolver (mailauth's `resolver` option). Errors carry node's `.code`: ENOTFOUND
 * (NXDOMAIN), ENODATA (no record of the type), ETIMEOUT, ESERVFAIL, so their temperror/permerror logic holds.
 */
import type { DnsLookup, DnsResult, LookupOptions, RecordType } from "./types.ts";

export type NodeDnsCode = "ENOTFOUND" | "ENODATA" | "ETIMEOUT" | "ESERVFAIL";

export interface NodeDnsError extends Error {
  code: NodeDnsCode;
  hostname: string;
  syscall: string;
}

const CODES: Record<Exclude<DnsResult["status"], "ok">, NodeDnsCode> = {
  nxdomain: "ENOTFOUND",
  nodata: "ENODATA",
  timeout: "ETIMEOUT",
  servfail: "ESERVFAIL",
};

function fail(r: DnsResult, name: string, type: string): never {
  const code = CODES[r.status as Exclude<DnsResult["status"], "ok">];
  const syscall = `query${type[0]}${type.slice(1).toLowerCase()}`;
  const err = new Error(`${syscall} ${code} ${name}`) as NodeDnsError;
  err.code = code;
  err.hostname = name;
  err.syscall = syscall;
  throw err;
}

export interface NodeDnsAdapter {
  /** node's dns.promises.resolve: MX → {exchange, priority}[], TXT → string[][], A/AAAA/PTR/CNAME → string[]. */
  resolve(name: string, type?: string): Promise<unknown[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  resolveMx(name: string): Promise<Array<{ exchange: string; priority: number }>>;
  /** One inner array per record, holding that record's strings already joined (RFC 7208 §3.3). */
  resolveTxt(name: string): Promise<string[][]>;
  resolvePtr(name: string): Promise<string[]>;
  resolveCname(name: string): Promise<string[]>;
}

const SUPPORTED = new Set<string>(["A", "AAAA", "MX", "TXT", "PTR", "CNAME", "TLSA"]);

export function nodeDnsAdapter(dns: DnsLookup, opts: LookupOptions = {}): NodeDnsAdapter {
  async function records<T extends RecordType>(name: string, type: T) {
    const r = await dns.lookup(name, type, opts);
    if (r.status !== "ok") fail(r, name, type);
    return r.records;
  }
  const resolveMx = async (name: string) =>
    // node gives the null MX (RFC 7505) as exchange "", and names without the trailing dot.
    (await records(name, "MX")).map((m) => ({ exchange: m.exchange === "." ? "" : m.exchange, priority: m.preference }));
  const resolveTxt = async (name: string) => (await records(name, "TXT")).map((t) => [t]);
  const adapter: NodeDnsAdapter = {
    async resolve(name, type = "A") {
      const t = type.toUpperCase();
      if (!SUPPORTED.has(t)) {
        const err = new Error(`query type not supported: ${type}`) as Error & { code: string };
        err.code = "EBADQUERY";
        throw err;
      }
      if (t === "MX") return resolveMx(name);
      if (t === "TXT") return resolveTxt(name);
      return records(name, t as RecordType);
    },
    resolve4: (name) => records(name, "A"),
    resolve6: (name) => records(name, "AAAA"),
    resolveMx,
    resolveTxt,
    resolvePtr: (name) => records(name, "PTR"),
    resolveCname: (name) => records(name, "CNAME"),
  };
  return adapter;
}
