/**
 * SPF (RFC 7208): check_host() of the MAIL FROM identity, or of the HELO name for the null path (§2.4), behind our
 * own types. mailauth 7.1.0 evaluates the record in its `strict` mode (RFC 7208 exactness: whole-record syntax
 * check first, void lookups counted per §4.6.4, the c/r/t macros only in explanations); every DNS question goes
 * through our resolver (dns/), whose TXT answers already join a record's strings (§3.3).
 *
 * What we do on our side, because mailauth's answer does not say it the way we need it:
 * - the outcome (scope, the evaluated domain, the RFC 8601 property, a short reason) is built here; mailauth
 *   reports errors only inside its Received-SPF comment, so the reason is read back from that text.
 * - mailauth's deadline races the evaluation but leaves its pending lookups running; our resolver bounds each of
 *   them (per-query timeout), so nothing outlives the evaluation by more than one query timeout.
 *
 * Known and left as they are (test/checks/spf-pyspf.test.ts shows them):
 * - mailauth checks the identity's domain with hostname rules (Joi) before any lookup, so a domain with an
 *   underscore in a label gives "none", where RFC 7208 §4.3 (and pyspf) evaluate it: DNS labels may hold "_"
 *   (RFC 2181 §11). The check is inside mailauth's spf(); working around it would mean re-implementing its lookup
 *   accounting. It can only lose a result (pass or fail becomes none), never make one up.
 * - A quoted local part holding "@" ("a@b"@example.com) is split at the last "@" (RFC 5321 §4.1.2), as mailauth
 *   does; pyspf splits at the first and answers none.
 */
import { hostname } from "node:os";
import spfModule from "mailauth/lib/spf/index.js";
import { nodeDnsAdapter, type DnsLookup } from "../dns/index.ts";
import type { SpfOutcome, SpfQuery, SpfResult } from "./types.ts";

interface MailauthSpfOptions {
  sender: string;
  ip: string;
  helo: string;
  mta: string;
  resolver: (name: string, type: string) => Promise<unknown[]>;
  strict: boolean;
  maxElapsedTime: number;
}

interface MailauthSpfResponse {
  domain: string;
  "envelope-from"?: string;
  status: { result: SpfResult; comment?: string };
  explanation?: string;
}

// mailauth is CommonJS without an exports map: its SPF module is imported statically (module.exports as the
// default) so that `bun build --compile` bundles it.
const { spf: mailauthSpf } = spfModule as unknown as { spf: (opts: MailauthSpfOptions) => Promise<MailauthSpfResponse> };

/** RFC 7208 §4.6.4: "at least 20 seconds" is the suggested limit on the whole evaluation. */
export const SPF_TIMEOUT_MS = 20_000;

export interface SpfOptions {
  /** Limit on the whole evaluation; past it the result is temperror (§4.6.4). Default SPF_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Our host name, for the %{r} macro of explanations (§7.3); default the OS host name. */
  receiver?: string;
}

/** What each result says when mailauth gave no more specific text. */
const PLAIN_REASON: Record<SpfResult, string> = {
  pass: "sender permitted",
  fail: "sender not permitted",
  softfail: "sender not permitted (softfail)",
  neutral: "sender neither permitted nor denied",
  none: "no SPF record",
  temperror: "DNS error",
  permerror: "invalid SPF record",
};

/**
 * RFC 7208 check_host() of the MAIL FROM identity (or of the HELO name when the sender is <>: RFC 7208 §2.4, as
 * postmaster@helo), through our resolver. Never rejects: DNS trouble → temperror, bad records → permerror.
 * Bounded: the 10-lookup limit (§4.6.4), 2 void lookups, and a whole-evaluation deadline (opts.timeoutMs, default
 * 20 s as §4.6.4 suggests) → temperror.
 */
export async function checkSpf(q: SpfQuery, dns: DnsLookup, opts: SpfOptions = {}): Promise<SpfOutcome> {
  const scope = q.sender === "" ? "helo" : "mailfrom";
  const property = scope === "helo" ? `smtp.helo=${q.helo}` : `smtp.mailfrom=${q.sender}`;
  const identity = scope === "helo" ? q.helo : q.sender;
  // The domain follows the last "@": a quoted local part may hold one (RFC 5321 §4.1.2).
  const at = identity.lastIndexOf("@");
  const domain = identityDomain(at < 0 ? identity : identity.slice(at + 1));
  const mta = opts.receiver ?? hostname();
  let r: MailauthSpfResponse;
  try {
    r = await mailauthSpf({
      sender: q.sender,
      ip: q.ip,
      helo: q.helo,
      mta,
      resolver: nodeDnsAdapter(dns).resolve,
      strict: true,
      maxElapsedTime: opts.timeoutMs ?? SPF_TIMEOUT_MS,
    });
  } catch (err) {
    // mailauth turns every error it knows into a result; anything else is still an evaluation that did not end.
    return { result: "temperror", scope, domain, property, reason: `SPF evaluation failed: ${(err as Error).message}` };
  }
  const result = r.status.result;
  const outcome: { -readonly [K in keyof SpfOutcome]: SpfOutcome[K] } = {
    result,
    scope,
    domain,
    property,
    reason: reasonOf(r, mta),
  };
  if (result === "fail" && r.explanation !== undefined) outcome.explanation = r.explanation;
  return outcome;
}

/** Lower-case, without a trailing dot; "" for what is no domain name at all (an address literal, nothing). */
function identityDomain(d: string): string {
  const name = d.trim().toLowerCase().replace(/\.$/, "");
  return name.startsWith("[") || name === "" ? "" : name;
}

/** mailauth's error text, taken back out of its comment (`<mta>: … during lookup of <sender>: <text>`). */
function reasonOf(r: MailauthSpfResponse, mta: string): string {
  const result = r.status.result;
  if (result !== "permerror" && result !== "temperror") return PLAIN_REASON[result];
  const prefix = `${mta}: `;
  const comment = r.status.comment ?? "";
  const lead = `lookup of ${r["envelope-from"] ?? ""}: `;
  const i = comment.indexOf(lead);
  if (i >= 0) return comment.slice(i + lead.length);
  return comment.startsWith(prefix) ? comment.slice(prefix.length) : PLAIN_REASON[result];
}
