/**
 * dns/: ringmta's stub resolver (UDP + TCP fallback, EDNS0 with DO, the AD bit, TTL and negative cache, lookup
 * budget). Build one Resolver per thread from `[dns] servers` and hand it around as a DnsLookup.
 */
export { LookupBudget, LookupLimitError } from "./types.ts";
export type { DnsLookup, DnsResult, DnsStatus, LookupOptions, MxRecord, RecordOf, RecordType, TlsaRecord } from "./types.ts";
export { mergeAddresses, Resolver, RESOLVER_DEFAULTS, reverseName } from "./resolver.ts";
export type { ResolverOptions } from "./resolver.ts";
export { parseResolvConf, parseServer, resolveServers } from "./servers.ts";
export type { Server } from "./transport.ts";
export { nodeDnsAdapter } from "./node-compat.ts";
export type { NodeDnsAdapter, NodeDnsCode, NodeDnsError } from "./node-compat.ts";
