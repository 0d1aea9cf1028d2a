/**
 * checks/: SPF, DKIM/ARC verification, DMARC and the Authentication-Results field (CONTRACT "Inbound checks"),
 * behind our own types (types.ts); mailauth does the record parsing and cryptography, our dns/ answers its queries.
 */
export type {
  ArcOutcome,
  ArcResult,
  ChecksAction,
  DkimOutcome,
  DkimResult,
  DmarcOutcome,
  DmarcResult,
  MessageChecks,
  SpfOutcome,
  SpfQuery,
  SpfResult,
} from "./types.ts";
export { checkSpf, SPF_TIMEOUT_MS } from "./spf.ts";
export type { SpfOptions } from "./spf.ts";
