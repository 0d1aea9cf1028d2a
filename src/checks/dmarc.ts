/**
 * DMARC (RFC 7489) at end of data: the policy of the RFC5322.From domain, found at `_dmarc.<from domain>` or else at
 * `_dmarc.<organizational domain>` (§6.6.3), and whether an aligned SPF or DKIM pass (§3.1) makes the message pass.
 *
 * Why our own evaluation and not mailauth's: mailauth 7.1.0 implements DMARCbis (the DNS Tree Walk, up to eight
 * `_dmarc` queries per name), while ringmta finds the organizational domain from the Public Suffix List as RFC 7489
 * §3.2 says: two queries at most. The PSL comes from tldts, pinned exactly (package.json) to the version mailauth
 * itself pins, so there is one copy. Record parsing (tag-list rules, §6.6.3 step 6 fallbacks) is mailauth's.
 *
 * pct= (RFC 7489 §6.6.4 samples messages at random): DMARCbis drops it, and random sampling would make the same
 * message rejected one time and delivered the next. We act deterministically: a record with pct below 100 (or
 * DMARCbis's t=y, its replacement) gets the next weaker policy for every message (reject → quarantine →
 * none), which is what §6.6.4 asks for the messages not sampled. We never act more strongly than the owner asked.
 *
 * ARC (RFC 8617 §7.2) may let a receiver override a DMARC fail for a chain sealed by a sealer it trusts; ringmta
 * keeps no list of trusted sealers, so an ARC pass is only noted in the reason, never an override.
 */
import { getDomain } from "tldts";
import type { DnsLookup } from "../dns/index.ts";
import { mailauth, type MailauthLib } from "./mailauth-lib.ts";
import { memoize } from "./memo.ts";
import type { ArcOutcome, DkimOutcome, DmarcOutcome, SpfOutcome } from "./types.ts";

type Policy = DmarcOutcome["policy"];

const WEAKER: Record<Policy, Policy> = { reject: "quarantine", quarantine: "none", none: "none" };

/** §6.3: "v=DMARC1" exactly, first, with optional WSP around "=". */
const DMARC_VERSION = /^v[ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)/i;

/**
 * The Public Suffix List's registrable domain (RFC 7489 §3.2), or the name itself when it is a public suffix.
 * Remembered for the last 10,000 names (checks/memo.ts): the same From domains come again and again.
 */
export const organizationalDomain = memoize(
  (domain: string): string => getDomain(domain, { allowPrivateDomains: true, allowIcannDomains: true }) ?? domain,
  { entries: 10_000, keyLength: 253 },
);

/** A DMARC record read: mailauth's parse and policy tags (null: invalid), and its pct= (100 when absent or bad). */
interface ReadRecord {
  readonly record: ReturnType<MailauthLib["parseDmarcRecord"]>;
  readonly tags: ReturnType<MailauthLib["getPolicyTags"]>;
  readonly pct: number;
}

function readRecordOnce(txt: string): ReadRecord {
  const { parseDmarcRecord, getPolicyTags } = mailauth();
  const record = parseDmarcRecord(txt, { strict: true });
  const tags = record === null ? null : getPolicyTags(record);
  // An unparseable pct= is ignored (as if 100), like any invalid optional tag.
  const pctTag = record === null ? null : /(?:^|;)[ \t]*pct[ \t]*=[ \t]*(\d{1,3})[ \t]*(?:;|$)/.exec(record.rr);
  return { record, tags, pct: pctTag ? Number(pctTag[1]) : 100 };
}

/**
 * Records read, by their text: the same few domains' records come with every message (checks/memo.ts). A TXT record
 * may be 64 KiB; only one of a reasonable length is kept.
 */
const readRecord = memoize(readRecordOnce, { entries: 1024, keyLength: 1024 });

type Lookup =
  | { kind: "record"; txt: string }
  | { kind: "none" }
  | { kind: "temperror"; why: string };

/** §6.6.3 steps 1–2: the TXT records at `_dmarc.<domain>` starting with v=DMARC1; exactly one counts. */
async function fetchRecord(dns: DnsLookup, domain: string): Promise<Lookup> {
  const name = `_dmarc.${domain}`;
  const r = await dns.lookup(name, "TXT");
  if (r.status === "timeout" || r.status === "servfail") return { kind: "temperror", why: `${name}: DNS ${r.status}` };
  if (r.status !== "ok") return { kind: "none" };
  const records = r.records.map((t) => t.trim()).filter((t) => DMARC_VERSION.test(t));
  // Several DMARC records: "policy discovery terminates and DMARC processing is not applied" (step 5).
  return records.length === 1 ? { kind: "record", txt: records[0]! } : { kind: "none" };
}

function aligned(domain: string, fromDomain: string, strict: boolean): boolean {
  const d = domain.toLowerCase().replace(/\.$/, "");
  if (d === "") return false;
  if (d === fromDomain) return true;
  // §3.1.1/§3.1.2 relaxed: the organizational domains are the same.
  return !strict && organizationalDomain(d) === organizationalDomain(fromDomain);
}

export async function checkDmarc(o: {
  fromDomains: ReadonlyArray<string>;
  spf: SpfOutcome | null;
  dkim: ReadonlyArray<DkimOutcome>;
  arc: ArcOutcome;
  dns: DnsLookup;
}): Promise<DmarcOutcome> {
  // §6.6.1: DMARC needs exactly one author domain; a message without one, or with several, cannot be
  // evaluated (a receiver MAY reject it; CONTRACT leaves such mail to the other checks).
  if (o.fromDomains.length !== 1) {
    const reason = o.fromDomains.length === 0 ? "no From domain" : `${o.fromDomains.length} From domains`;
    return { result: "permerror", fromDomain: "", policy: "none", reason };
  }
  const fromDomain = o.fromDomains[0]!.toLowerCase().replace(/\.$/, "");
  const orgDomain = organizationalDomain(fromDomain);

  let found = await fetchRecord(o.dns, fromDomain);
  let recordDomain = fromDomain;
  if (found.kind === "none" && orgDomain !== fromDomain) {
    found = await fetchRecord(o.dns, orgDomain);
    recordDomain = orgDomain;
  }
  if (found.kind === "temperror") return { result: "temperror", fromDomain, policy: "none", reason: found.why };
  if (found.kind === "none") return { result: "none", fromDomain, policy: "none", reason: "no DMARC record" };

  const { record, tags, pct } = readRecord(found.txt);
  const inherited = recordDomain !== fromDomain ? { orgDomain: recordDomain } : {};
  if (record === null || tags === null) {
    // §6.6.3 step 6: no valid p= and nowhere to report: no DMARC processing.
    return { result: "none", fromDomain, policy: "none", ...inherited, reason: "invalid DMARC record" };
  }

  // §6.3 sp=: the policy for subdomains, applied when the record came from the organizational domain.
  let policy = (recordDomain !== fromDomain ? (tags.sp ?? tags.p) : tags.p) as Policy;
  const softened = pct < 100 || record.t === "y";
  if (softened) policy = WEAKER[policy];

  const spfAligned =
    o.spf !== null && o.spf.result === "pass" && o.spf.domain !== "" && aligned(o.spf.domain, fromDomain, record.aspf === "s");
  const dkimAligned = o.dkim.find((d) => d.result === "pass" && aligned(d.domain, fromDomain, record.adkim === "s"));
  const notes = [softened ? `policy softened by ${pct < 100 ? `pct=${pct}` : "t=y"}` : "", o.arc.result === "pass" ? "arc=pass not trusted" : ""];
  if (spfAligned || dkimAligned) {
    const by = dkimAligned ? `aligned DKIM ${dkimAligned.domain}` : `aligned SPF ${o.spf!.domain}`;
    return { result: "pass", fromDomain, policy, ...inherited, reason: [by, notes[0]].filter(Boolean).join(", ") };
  }
  return { result: "fail", fromDomain, policy, ...inherited, reason: ["no aligned SPF or DKIM pass", ...notes].filter(Boolean).join(", ") };
}
