export { hopCounterStage } from "./hop-counter.ts";
export { clientNetwork, expandIpv6, plainAddress } from "./client-address.ts";
export { classify, DnsLists, listLookupOf, type ClientLists, type ListLookup, type ListLookupStatus, type ListResult, type ZoneAnswer } from "./dns-lists.ts";
export {
  DefenceReply,
  dnsblStage,
  greylistStage,
  pregreetStage,
  rateLimitStage,
  type DefenceDeps,
  type DefenceSettings,
  type FleetCounters,
  type RateLimitEntry,
  type RateLimitKey,
} from "./defence.ts";
export { GREYLIST_KNOWN_MS, GREYLIST_MAX_ENTRIES, GREYLIST_RETRY_WINDOW_MS, GreylistFile, GreylistStore, tripleKey } from "./greylist.ts";
export { RATE_LIMIT_MAX_KEYS, RateLimiter, type RateLimitSpec } from "./rate-limiter.ts";
export type { DefenceLog, DefenceReason, DefenceReport } from "./report.ts";
export { dkimSignStage, type DkimSignSettings } from "./dkim-sign.ts";
export {
  anyCheckOn,
  authChecksStage,
  concludeChecks,
  verifierFor,
  type AuthCheck,
  type AuthChecksDeps,
  type AuthCheckSwitches,
  type ChecksReport,
} from "./auth-checks.ts";
