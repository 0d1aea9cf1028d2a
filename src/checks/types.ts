/**
 * checks/: the inbound mail-authentication checks (CONTRACT "Inbound checks"): SPF (RFC 7208), DKIM (RFC 6376,
 * RFC 8463) and ARC (RFC 8617) verification, DMARC (RFC 7489) with the organizational domain from the Public
 * Suffix List, and the Authentication-Results field (RFC 8601) that reports them. mailauth (pinned exactly) does
 * the cryptography and record parsing behind these types; our dns/ resolver answers every query it asks. Nothing
 * here knows SMTP sessions: inbound/ runs the checks as stages, cli/ runs them for `verify`.
 *
 * The result words are RFC 8601 §2.7's, so they go into Authentication-Results as they are.
 */

/** RFC 7208 §2.6 results. */
export type SpfResult = "pass" | "fail" | "softfail" | "neutral" | "none" | "temperror" | "permerror";

/** The identities of one SMTP transaction that SPF checks (RFC 7208 §2.3, §2.4). */
export interface SpfQuery {
  /** The client's address (the PROXY header's source where one was read). */
  readonly ip: string;
  /** The HELO/EHLO name as given. */
  readonly helo: string;
  /** MAIL FROM's address, "" for the null path <> (then the HELO identity is checked, RFC 7208 §2.4). */
  readonly sender: string;
}

export interface SpfOutcome {
  readonly result: SpfResult;
  /** Which identity was checked: MAIL FROM's domain, or the HELO name for <>. */
  readonly scope: "mailfrom" | "helo";
  /** The domain whose policy was evaluated, lower-case; "" when the identity has none. */
  readonly domain: string;
  /** The RFC 8601 property for the field: `smtp.mailfrom=<address>` or `smtp.helo=<name>`. */
  readonly property: string;
  /** A fail's explanation (RFC 7208 §6.2): the domain owner's text, never trusted, only logged. */
  readonly explanation?: string;
  /** Why, in a few words, for logs and the field's comment (e.g. "too many DNS lookups"). */
  readonly reason?: string;
}

/** RFC 8601 §2.7.1 results of one DKIM-Signature ("policy": a signature we refuse to honour, e.g. a weak key). */
export type DkimResult = "pass" | "fail" | "neutral" | "policy" | "temperror" | "permerror";

export interface DkimOutcome {
  readonly result: DkimResult;
  /** d= (lower-case) and s= of the signature; "" when the field was too broken to name them. */
  readonly domain: string;
  readonly selector: string;
  /** a= as given, e.g. "rsa-sha256", "ed25519-sha256". */
  readonly algorithm: string;
  /** The first 8 characters of b= (RFC 6008 header.b), to tell signatures of one domain apart. */
  readonly b: string;
  /** Why a result is not pass, in a few words ("body hash did not verify", "key too small", "no key"). */
  readonly reason?: string;
}

/** RFC 8617 §4.4 chain validation status ("none": no ARC sets). */
export type ArcResult = "pass" | "fail" | "none";

export interface ArcOutcome {
  readonly result: ArcResult;
  /** The highest instance (i=) seen, 0 when none. */
  readonly instance: number;
  readonly reason?: string;
}

/** RFC 7489 §11.2 results. */
export type DmarcResult = "pass" | "fail" | "none" | "temperror" | "permerror";

export interface DmarcOutcome {
  readonly result: DmarcResult;
  /** The RFC5322.From domain (lower-case); "" when the message has no single From domain. */
  readonly fromDomain: string;
  /** The policy that applies to this From domain (p=, or sp= for a subdomain); "none" when there is no record. */
  readonly policy: "none" | "quarantine" | "reject";
  /** The organizational domain (Public Suffix List) the record was found at, when it was not the From domain. */
  readonly orgDomain?: string;
  readonly reason?: string;
}

/** What a message's headers and body say, once its end was read. */
export interface MessageChecks {
  /** One entry per DKIM-Signature field, in the message's order; empty when unsigned (then `dkim=none`). */
  readonly dkim: ReadonlyArray<DkimOutcome>;
  readonly arc: ArcOutcome;
  /** Null when DMARC was not evaluated (checks.dmarc = "off"). */
  readonly dmarc: DmarcOutcome | null;
}

/** What the checks decide for a message (CONTRACT "Replies" and "Inbound checks"). */
export type ChecksAction =
  /** Deliver normally. */
  | { kind: "accept" }
  /** DMARC quarantine under `enforce`: deliver into the recipients' `.Junk` folder. */
  | { kind: "quarantine" }
  /** DMARC reject under `enforce`: `550 5.7.1`, nothing stored. */
  | { kind: "reject"; reply: string }
  /** A DNS failure leaves a rejection undecided: `451 4.7.0`, never a 5xx. */
  | { kind: "tempfail"; reply: string };
