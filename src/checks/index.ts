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
export { MessageVerifier, MAX_SIGNATURES } from "./message.ts";
export type { ArcSealer, VerifiedMessage, VerifyOptions } from "./message.ts";
export { checkDmarc, organizationalDomain } from "./dmarc.ts";
export { authenticationResults, hasAuthservId } from "./results.ts";
export { decide, DMARC_REJECT_REPLY, DMARC_TEMPFAIL_REPLY } from "./decide.ts";
export { checkSpf, SPF_TIMEOUT_MS } from "./spf.ts";
export type { SpfOptions } from "./spf.ts";
export { SPF_MEMO_MAX, SPF_MEMO_MS, SpfMemo } from "./spf-memo.ts";
