/**
 * DKIM verification (RFC 6376 §6, RFC 8463 ed25519, RFC 8301) of one message whose header section has been read
 * and whose body streams past: every body hash a signature asks for (c=, a=, l=) is computed as the bytes arrive,
 * the key records are looked up through a port while the body is still coming, and the signatures are checked with
 * the asynchronous crypto.verify, which runs on the runtime's thread pool, not the event loop.
 *
 * The rules and result words are those of mailauth's strict mode (the verifier this one replaced for messages
 * without ARC fields, and still the oracle of its tests), expressed as RFC 8601 §2.7.1 results: a signature with
 * syntax errors is "neutral", a missing or unusable key "permerror" (a PERMFAIL of RFC 6376 §6.1.2), a body-hash
 * or signature mismatch "fail" (§6.1.3), a DNS failure "temperror", and what RFC 8301 makes us refuse "policy".
 */
import { Buffer } from "node:buffer";
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { domainToASCII } from "node:url";
import { RelaxedBodyHash, SimpleBodyHash, type BodyHashAlgorithm, type BodyHasher } from "./body-hash.ts";
import type { HeaderField } from "./header-section.ts";
import { relaxedHeader } from "./signer.ts";
import { compact, parseTagList } from "./tag-list.ts";

/** A key record lookup (`<s>._domainkey.<d>` TXT): each record's strings joined (RFC 6376 §3.6.2.2). */
export type KeyAnswer =
  | { readonly status: "ok"; readonly records: ReadonlyArray<string> }
  | { readonly status: "nxdomain" | "nodata" | "timeout" | "servfail" };
export type KeyLookup = (name: string) => Promise<KeyAnswer>;

export type VerdictResult = "pass" | "fail" | "neutral" | "policy" | "temperror" | "permerror";

/** The outcome of one DKIM-Signature field. */
export interface SignatureVerdict {
  readonly result: VerdictResult;
  /** d= (lower-case) and s=; "" when the field does not name them. */
  readonly domain: string;
  readonly selector: string;
  /** a= as given. */
  readonly algorithm: string;
  /** The first 8 characters of b= (RFC 6008 §4), FWS removed. */
  readonly b: string;
  /** Why the result is not pass, in a few words. */
  readonly reason?: string;
}

/**
 * RFC 6376 §6.1: "Verifiers MAY limit the number of signatures they attempt to verify". Past the first ten
 * DKIM-Signature fields, each further one is reported as policy with OVER_LIMIT as its reason and is neither
 * hashed nor looked up: a message with 10,000 signatures costs ten verifications, not 10,000 body hashes.
 */
export const MAX_SIGNATURES = 10;
export const OVER_LIMIT = `not verified: over ${MAX_SIGNATURES} signatures per message (RFC 6376 section 6.1)`;

/** RFC 8301 §3.2: RSA keys of 1024 bits and more are verified; under that, policy. */
export const MIN_RSA_BITS = 1024;
/**
 * RFC 8301 §3.2: verifiers "MAY be able to validate signatures with larger keys" than 4096 bits; we accept up to
 * 8192 and call a larger key policy. A key record longer than an 8192-bit key needs (about 1,450 characters of
 * base64) by a wide margin is refused before it is parsed, so a 64 KB TXT answer costs no key parsing.
 */
export const MAX_RSA_BITS = 8192;
export const MAX_KEY_RECORD = 4096;
/** An RSA SubjectPublicKeyInfo is the modulus plus about 40 octets of DER; 8192 bits and a margin, in base64. */
export const MAX_KEY_BASE64 = Math.ceil(((MAX_RSA_BITS / 8 + 100) * 4) / 3);
export const KEY_TOO_LARGE_REASON = `key too large (over ${MAX_RSA_BITS} bits) or key record too long`;
export const KEY_TOO_SMALL_REASON = `key too small (under ${MIN_RSA_BITS} bits, RFC 8301)`;

/** A key record (its strings joined) over the bounds above: refused unparsed. */
export function keyRecordTooLarge(txt: string): boolean {
  if (txt.length > MAX_KEY_RECORD) return true;
  const p = /(?:^|;)[ \t]*p[ \t]*=([^;]*)/.exec(txt)?.[1];
  return p !== undefined && p.replace(/\s+/g, "").length > MAX_KEY_BASE64;
}

/** The first 8 characters of b= (RFC 6008 §4); b= may be folded, FWS is not part of it. */
export function bPrefix(b: string | undefined): string {
  return compact(b).slice(0, 8);
}

/** d=, s=, a=, b= of a signature we do not verify, read without a full parse (it may be anything). */
export function unverifiedVerdict(field: string): SignatureVerdict {
  const line = field.slice(0, 4096);
  const tag = (name: string) => new RegExp(`(?:^|[;:])\\s*${name}\\s*=\\s*([^;]*)`).exec(line)?.[1]?.trim() ?? "";
  return {
    result: "policy",
    domain: tag("d").toLowerCase().slice(0, 255),
    selector: tag("s").slice(0, 255),
    algorithm: tag("a").slice(0, 64),
    b: bPrefix(tag("b")),
    reason: OVER_LIMIT,
  };
}

// --- names -------------------------------------------------------------------------------------------------------

/** §3.5 sub-domain; domain-name = sub-domain 1*("." sub-domain); selector = sub-domain *("." sub-domain). */
const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const DOMAIN_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})+$`);
const SELECTOR = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** §3.5: sig-t-tag and sig-x-tag are 1*12DIGIT, sig-l-tag 1*76DIGIT. */
const TIMESTAMP = /^[0-9]{1,12}$/;
const BODY_LENGTH = /^[0-9]{1,76}$/;
/** §3.5 sig-a-tag-alg = sig-a-tag-k "-" sig-a-tag-h. */
const ALGORITHM = /^[A-Za-z][A-Za-z0-9]*-[A-Za-z][A-Za-z0-9]*$/;
/** The i= local-part: RFC 5322 dot-atom-text (with RFC 6531's UTF-8) or a quoted-string. */
const ATEXT = "(?:[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]|[^\\x00-\\x7f])";
const LOCAL_PART = new RegExp(`^(?:${ATEXT}+(?:\\.${ATEXT}+)*|"(?:[^"\\\\\\r\\n]|\\\\.)*")$`);
const NON_ASCII = /[^\x00-\x7f]/;
/** §3.5 "Verifiers MUST confirm that the header fields specified in the h= tag" include From (§5.4). */
const REQUIRED_TAGS = ["v", "a", "b", "bh", "d", "h", "s"];

/** RFC 8616 §3: U-labels become A-labels (NFC, lower case); ASCII labels stay as they are. */
function aLabel(domain: string): string {
  if (!NON_ASCII.test(domain)) return domain;
  return domain
    .split(".")
    .map((l) => (NON_ASCII.test(l) ? domainToASCII(l.normalize("NFC").toLowerCase()) || l : l))
    .join(".");
}

const normalDomain = (d: string): string => aLabel(d.trim()).toLowerCase().replace(/\.$/, "");

function sameOrSubdomain(child: string, parent: string): boolean {
  const c = normalDomain(child);
  const p = normalDomain(parent);
  return c !== "" && p !== "" && (c === p || c.endsWith(`.${p}`));
}

/** §2.11 dkim-quoted-printable (the i= value): FWS is no part of it, =XX is an octet; read as UTF-8. */
function decodeQuotedPrintable(value: string): string {
  const bytes = Buffer.from(value.replace(/[ \t\r\n]+/g, ""), "utf8");
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const hex = i + 2 < bytes.length ? bytes.subarray(i + 1, i + 3).toString("latin1") : "";
    if (bytes[i] === 0x3d && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(bytes[i]!);
  }
  return Buffer.from(out).toString("utf8");
}

/** A colon-separated list (h=, key s=, key t=): entries trimmed, lower-case, empty ones dropped. */
const colonList = (value: string | undefined): string[] =>
  (value ?? "")
    .split(":")
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== "");

// --- keys --------------------------------------------------------------------------------------------------------

type Failure = { readonly result: VerdictResult; readonly reason: string };
const permerror = (reason: string): Failure => ({ result: "permerror", reason });

/** A key record read (RFC 6376 §3.6.1, RFC 8463 §4): what fails before the h= check, h=, what fails after it. */
interface KeyRecord {
  readonly before?: Failure;
  /** h=: the hash algorithms the key may be used with; null when the record does not say. */
  readonly hashes: ReadonlyArray<string> | null;
  readonly after?: Failure;
  readonly key?: KeyObject;
  readonly type?: "rsa" | "ed25519";
  readonly bits?: number;
  readonly flags?: ReadonlyArray<string>;
}

/** Base64 as the key's p= must be (padding optional). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
/** DER SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410 §4), before its 32 raw octets. */
const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");

/** A bare RSAPublicKey (a SEQUENCE whose first element is an INTEGER), which §3.6.1 k=rsa also allows. */
function bareRsa(der: Buffer): boolean {
  if (der.length < 3 || der[0] !== 0x30) return false;
  const header = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f);
  return der[header] === 0x02;
}

function readKeyRecord(rr: string): KeyRecord {
  const invalid = { before: permerror("invalid public key"), hashes: null };
  if (rr === "") return invalid;
  const { tags, names, invalid: badSyntax } = parseTagList(rr);
  // §6.1.2 step 5: a record that does not adhere to the format is ignored.
  if (badSyntax) return invalid;
  const p = tags.get("p");
  // §3.6.1: "An empty value means that this public key has been revoked."
  if (!p || !BASE64.test(p)) return invalid;
  const v = tags.get("v");
  // §3.6.1 key-v-tag: exactly "DKIM1", and the first tag when present.
  if (v !== undefined && (v !== "DKIM1" || names[0] !== "v")) return { before: permerror("unknown key version"), hashes: null };
  const s = tags.get("s");
  // §3.6.1 s=: "Verifiers for a given service type MUST ignore this record if the appropriate type is not listed".
  if (s !== undefined && !colonList(s).some((e) => e === "email" || e === "*")) return { before: permerror("key not for email"), hashes: null };
  const hashes = tags.has("h") ? colonList(tags.get("h")) : null;
  const declared = tags.get("k")?.toLowerCase().trim() || "";
  const raw = Buffer.from(p, "base64");
  let key: KeyObject;
  try {
    key =
      raw.length === 32 && declared === "ed25519"
        ? createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: "der", type: "spki" })
        : createPublicKey({ key: raw, format: "der", type: bareRsa(raw) ? "pkcs1" : "spki" });
  } catch {
    return { hashes, after: permerror("unknown key type") };
  }
  const type = key.asymmetricKeyType;
  // §3.6.1 k= defaults to rsa; an ed25519 key must say so (RFC 8463 §4), and publishes the bare 32 octets.
  if ((type !== "rsa" && type !== "ed25519") || (declared !== "" && declared !== type) || (declared === "" && type !== "rsa")) {
    return { hashes, after: permerror("unknown key type") };
  }
  if (type === "ed25519" && raw.length !== 32) return { hashes, after: permerror("invalid public key") };
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (type === "rsa" && bits < MIN_RSA_BITS) return { hashes, after: { result: "policy", reason: KEY_TOO_SMALL_REASON } };
  return { hashes, key, type, bits, flags: colonList(tags.get("t")) };
}

/**
 * Key records read, by their text as DNS gave it: a KeyObject is made once per published key, not once per
 * message. Bounded; the least recently used entry goes first.
 */
const KEY_CACHE_SIZE = 1000;
const keyCache = new Map<string, KeyRecord | "too-large">();

function keyRecord(txt: string): KeyRecord | "too-large" {
  let k = keyCache.get(txt);
  if (k !== undefined) {
    keyCache.delete(txt);
  } else {
    // §3.6.2.2: the strings of the record are one value; whitespace is removed (FWS may sit between tags and
    // inside p=).
    k = keyRecordTooLarge(txt) ? "too-large" : readKeyRecord(txt.replace(/\s+/g, ""));
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
  }
  keyCache.set(txt, k);
  return k;
}

/** The key of a signature, or why there is none usable (§6.1.2). */
function keyOf(answer: KeyAnswer, hash: BodyHashAlgorithm): Failure | KeyRecord {
  switch (answer.status) {
    case "ok":
      break;
    case "nxdomain":
    case "nodata":
      // §6.1.2 step 3: no key record is a PERMFAIL.
      return permerror("no key");
    case "timeout":
      return { result: "temperror", reason: "DNS failure: ETIMEOUT" };
    case "servfail":
      return { result: "temperror", reason: "DNS failure: ESERVFAIL" };
  }
  if (answer.records.length === 0) return permerror("invalid public key");
  // Only the first record is read (§3.6.2.2 leaves several records undefined); every one is bounded.
  const k = keyRecord(answer.records[0]!);
  if (k === "too-large" || answer.records.some((r, i) => i > 0 && keyRecordTooLarge(r))) {
    return { result: "policy", reason: KEY_TOO_LARGE_REASON };
  }
  if (k.before) return k.before;
  // §6.1.2 step 6: h= lists the hash algorithms the key may be used with.
  if (k.hashes !== null && !k.hashes.includes(hash)) return permerror("inappropriate hash algorithm");
  return k.after ?? k;
}

// --- signatures --------------------------------------------------------------------------------------------------

type Canon = "simple" | "relaxed";

/** A DKIM-Signature field read and checked (§6.1.1), ready to verify. */
interface Signature {
  readonly field: HeaderField;
  readonly report: Omit<SignatureVerdict, "result" | "reason">;
  /** §6.1.1 PERMFAIL before any key lookup: reported as neutral with this reason. */
  readonly invalid?: string;
  readonly headerCanon: Canon;
  readonly bodyKey: string;
  readonly signAlgo: "rsa" | "ed25519";
  readonly hash: BodyHashAlgorithm;
  readonly bh: string;
  readonly b: string;
  readonly names: ReadonlyArray<string>;
  readonly d: string;
  readonly s: string;
  readonly t: number | null;
  readonly x: number | null;
  /** The i= domain when i= is given (the key's t=s flag compares it with d=). */
  readonly identityDomain: string | null;
  readonly l: number | null;
}

function canonOf(value: string | undefined): Canon | null {
  return value === "simple" || value === "relaxed" ? value : null;
}

function readSignature(field: HeaderField): Signature {
  // The field as UTF-8 (RFC 6376 §3.5 allows UTF-8 in i= and z=, RFC 8616), its value after the colon.
  const text = (NON_ASCII.test(field.raw) ? Buffer.from(field.raw, "latin1").toString("utf8") : field.raw).trim();
  const { tags, invalid: badSyntax } = parseTagList(text.slice(text.indexOf(":") + 1).trim());
  const get = (n: string): string => tags.get(n) ?? "";
  const a = get("a");
  const d = get("d");
  const s = get("s");
  const b = compact(tags.get("b"));
  // bPrefix of b=, from the one compacted value.
  const report = { domain: d.toLowerCase(), selector: s, algorithm: a, b: b.slice(0, 8) };
  // a= and c= are lower-cased whole, then split: the same parts as lower-casing each, since "-" and "/" are neither
  // cased nor case-ignorable (Unicode's context rules do not reach across them), and one call costs less.
  const dash = a.toLowerCase().split("-");
  const signAlgo = dash[0]!.trim();
  const hash = dash[dash.length - 1]!.trim();
  const c = get("c").toLowerCase().split("/");
  const headerCanon = canonOf(c[0]!.trim() || "simple");
  const bodyCanon = canonOf((c[1] || "simple").trim());
  const t = tags.has("t") && TIMESTAMP.test(get("t")) ? Number(get("t")) : null;
  const x = tags.has("x") && TIMESTAMP.test(get("x")) ? Number(get("x")) : null;
  const l = tags.has("l") && BODY_LENGTH.test(get("l")) ? Number(get("l")) : null;
  // h= is lower-cased as one string when it is ASCII (character by character then, and lower-casing each of many
  // short substrings costs more); a non-ASCII name is lower-cased alone, as Unicode's context rules (the Greek
  // final sigma) must see only that name.
  const h = compact(tags.get("h"));
  const names: string[] = [];
  if (NON_ASCII.test(h)) {
    for (const n of h.split(":")) if (n !== "") names.push(n.toLowerCase());
  } else for (const n of h.toLowerCase().split(":")) if (n !== "") names.push(n);
  // One object, completed in place (no copies made with spreads): invalid and identityDomain are set last.
  const sig: { -readonly [K in keyof Signature]: Signature[K] } = {
    field,
    report,
    headerCanon: headerCanon ?? "simple",
    bodyKey: `${bodyCanon}:${hash}:${l ?? ""}`,
    signAlgo: signAlgo === "ed25519" ? "ed25519" : "rsa",
    hash: hash === "sha1" ? "sha1" : "sha256",
    bh: compact(tags.get("bh")),
    b,
    names,
    d,
    s,
    t,
    x,
    identityDomain: null,
    l,
    invalid: undefined,
  };
  const invalid = (reason: string): Signature => {
    sig.invalid = reason;
    return sig;
  };
  // §3.3: rsa-sha256 and ed25519-sha256 (RFC 8463); rsa-sha1 is read so that it can be refused by name (RFC 8301).
  const supported = (signAlgo === "rsa" || signAlgo === "ed25519") && (hash === "sha256" || (signAlgo === "rsa" && hash === "sha1"));
  if (!supported || !ALGORITHM.test(a)) return invalid("unknown algorithm");
  if (headerCanon === null || bodyCanon === null) return invalid("unknown canonicalization");
  if (d === "" || s === "") return invalid("signature missing required tag");
  // §3.2: a duplicate tag or other syntax error makes the whole list invalid.
  if (badSyntax) return invalid("signature syntax error");
  for (const n of REQUIRED_TAGS) if (!tags.has(n)) return invalid("signature missing required tag");
  // §6.1.1: "Verifiers MUST return PERMFAIL (incompatible version)" for v= other than 1.
  if (get("v") !== "1") return invalid("incompatible version");
  if ((tags.has("t") && t === null) || (tags.has("x") && x === null) || (tags.has("l") && l === null)) return invalid("signature syntax error");
  if (names.length === 0) return invalid("signature syntax error");
  if (!DOMAIN_NAME.test(aLabel(d)) || !SELECTOR.test(aLabel(s))) return invalid("signature syntax error");
  // §3.5 q=: dns/txt is the only query method.
  if (tags.has("q") && get("q") !== "dns/txt" && !colonList(get("q")).includes("dns/txt")) return invalid("unsupported query method");
  let identityDomain: string | null = null;
  if (tags.has("i")) {
    // §6.1.1: the i= domain must be d= or a subdomain of it.
    const identity = decodeQuotedPrintable(get("i"));
    const at = identity.lastIndexOf("@");
    const local = at >= 0 ? identity.slice(0, at) : "";
    identityDomain = at >= 0 ? identity.slice(at + 1) : "";
    const syntax = at >= 0 && (local === "" || LOCAL_PART.test(local)) && DOMAIN_NAME.test(aLabel(identityDomain));
    if (!syntax) return invalid("signature syntax error");
    if (!sameOrSubdomain(identityDomain, d)) return invalid("domain mismatch");
  }
  // §3.5 x=: "MUST be greater than the value of the t= tag".
  if (t !== null && x !== null && x <= t) return invalid("invalid expiration");
  // §5.4 / §6.1.1: a signature that does not cover From says nothing of the author.
  if (!names.includes("from")) return invalid("From field not signed");
  sig.identityDomain = identityDomain;
  return sig;
}

/**
 * RFC 6376 §3.7: the signature's own field, canonicalized, with the value of its b= tag (the last tag named "b",
 * its surrounding whitespace included) emptied. The tag-specs are walked from the end with lastIndexOf (b= is
 * usually the last one), not split and joined.
 */
function withoutSignature(line: string): string {
  const colon = line.indexOf(":");
  let end = line.length;
  for (;;) {
    const semi = end > colon + 1 ? line.lastIndexOf(";", end - 1) : -1;
    const start = semi > colon ? semi + 1 : colon + 1;
    const eq = line.indexOf("=", start);
    if (eq >= 0 && eq < end && isNameB(line, start, eq)) return line.slice(0, eq + 1) + line.slice(end);
    if (start === colon + 1) return line;
    end = semi;
  }
}

/**
 * Whether line[start, end) is the tag name "b": read as UTF-8, whitespace around it removed. ASCII by char code;
 * anything else decoded, as a non-ASCII space (U+00A0 is C2 A0) is whitespace too.
 */
function isNameB(line: string, start: number, end: number): boolean {
  let b = false;
  for (let i = start; i < end; i++) {
    const c = line.charCodeAt(i);
    if (c >= 0x80) return Buffer.from(line.slice(start, end), "latin1").toString("utf8").replace(/\s+/g, " ").trim() === "b";
    if (c === 32 || (c >= 9 && c <= 13)) continue;
    if (c !== 0x62 || b) return false;
    b = true;
  }
  return b;
}

export interface DkimVerifyOptions {
  lookup: KeyLookup;
  /** The time signatures' x= is compared with (ms); now by default. */
  now?: number;
}

/** Fields of one name, bottom-up (§5.4.2: the first occurrence of a name in h= selects the last field). */
type FieldIndex = Map<string, HeaderField[]>;

/**
 * One message's DKIM verification: built once its header section is complete (the fields, from splitFields),
 * fed the body with update(), finished with finish().
 */
export class DkimVerification {
  private readonly signatures: Signature[] = [];
  private readonly excess: SignatureVerdict[] = [];
  private readonly bodies = new Map<string, BodyHasher>();
  private readonly hashers: BodyHasher[] = [];
  private readonly keys = new Map<string, Promise<KeyAnswer>>();
  private readonly now: number;
  private index: FieldIndex | null = null;
  /**
   * Fields in relaxed canonical form (§3.4.2), each made once: the signatures of a message (often two, RSA and
   * Ed25519) mostly sign the same fields. Lives as long as this message's verification.
   */
  private readonly relaxed = new Map<HeaderField, string>();

  constructor(
    private readonly fields: ReadonlyArray<HeaderField>,
    private readonly o: DkimVerifyOptions,
  ) {
    this.now = o.now ?? Date.now();
    for (const f of fields) {
      if (f.name !== "dkim-signature") continue;
      if (this.signatures.length >= MAX_SIGNATURES) {
        this.excess.push(unverifiedVerdict(f.raw));
        continue;
      }
      const sig = readSignature(f);
      this.signatures.push(sig);
      if (sig.invalid !== undefined) continue;
      if (!this.bodies.has(sig.bodyKey)) {
        const limit = sig.l ?? Infinity;
        const h = sig.bodyKey.startsWith("simple") ? new SimpleBodyHash(sig.hash, limit) : new RelaxedBodyHash(sig.hash, limit);
        this.bodies.set(sig.bodyKey, h);
        this.hashers.push(h);
      }
      // The key is looked up now, while the body is still on its way (rsa-sha1 is refused without one).
      if (sig.hash === "sha256") this.lookup(sig);
    }
  }

  /** Whether any signature is to be verified (else the body need not be fed). */
  get hashing(): boolean {
    return this.hashers.length > 0;
  }

  update(body: Uint8Array): void {
    for (const h of this.hashers) h.update(body);
  }

  /** One verdict per DKIM-Signature field, in the message's order. */
  async finish(): Promise<SignatureVerdict[]> {
    const digests = new Map<string, string>();
    for (const [k, h] of this.bodies) digests.set(k, h.digest());
    const verdicts = await Promise.all(this.signatures.map((s) => this.verify(s, digests)));
    return this.excess.length > 0 ? verdicts.concat(this.excess) : verdicts;
  }

  private lookup(sig: Signature): Promise<KeyAnswer> {
    const name = aLabel(`${sig.s}._domainkey.${sig.d}`);
    let p = this.keys.get(name);
    if (p === undefined) {
      p = this.o.lookup(name).catch((): KeyAnswer => ({ status: "servfail" }));
      this.keys.set(name, p);
    }
    return p;
  }

  private async verify(sig: Signature, digests: ReadonlyMap<string, string>): Promise<SignatureVerdict> {
    // Written out rather than spread (this runs for every signature); the same properties in the same order.
    const { domain, selector, algorithm, b } = sig.report;
    const verdict = (result: VerdictResult, reason?: string): SignatureVerdict =>
      reason !== undefined ? { result, domain, selector, algorithm, b, reason } : { result, domain, selector, algorithm, b };
    if (sig.invalid !== undefined) return verdict("neutral", sig.invalid);
    // §6.1.3 step 3: a body hash that does not match is a PERMFAIL.
    if (digests.get(sig.bodyKey) !== sig.bh) return verdict("fail", "body hash did not verify");
    // RFC 8301 §3.1: "rsa-sha1 MUST NOT be used for signing or verifying".
    if (sig.hash === "sha1") return verdict("policy", "weak algorithm");
    const k = keyOf(await this.lookup(sig), sig.hash);
    if ("result" in k) return verdict(k.result, k.reason);
    // §6.1.2 step 8: the key's type must be the signature's.
    if (k.type !== sig.signAlgo) return verdict("permerror", "inappropriate key algorithm");
    // §3.6.1 key t=s: "the "i=" domain MUST NOT be a subdomain of "d="".
    if (k.flags!.includes("s") && sig.identityDomain && normalDomain(sig.identityDomain) !== normalDomain(sig.d)) {
      return verdict("neutral", "domain mismatch");
    }
    const data = this.headerHashInput(sig);
    let ok: boolean;
    try {
      ok = await verifyAsync(sig.signAlgo === "rsa" ? sig.hash : null, sig.signAlgo === "rsa" ? data : createHash("sha256").update(data).digest(), k.key!, Buffer.from(sig.b, "base64"));
    } catch (err) {
      return verdict("neutral", (err as Error).message);
    }
    if (!ok) return verdict("fail", "bad signature");
    // §3.5 x=: "Signatures MAY be considered invalid if the verification time at the Verifier is past the expiration".
    if (sig.x !== null && sig.x * 1000 < this.now) return verdict("neutral", "expired");
    if ((k.bits ?? 0) > MAX_RSA_BITS) return verdict("policy", `key too large (${k.bits} bits)`);
    return verdict("pass");
  }

  /** §3.7: the fields h= names, canonicalized, then this signature's field without its b= value. */
  private headerHashInput(sig: Signature): Buffer {
    const index = (this.index ??= this.indexFields());
    const used = new Map<string, number>();
    const relaxed = sig.headerCanon === "relaxed";
    let out = "";
    for (const name of sig.names) {
      const n = used.get(name) ?? 0;
      used.set(name, n + 1);
      // §5.4.2: a name listed more often than it occurs signs the null string (over-signing).
      const f = index.get(name)?.[n];
      if (f !== undefined) out += (relaxed ? this.relaxedField(f) : f.raw) + "\r\n";
    }
    out += withoutSignature(relaxed ? this.relaxedField(sig.field) : sig.field.raw);
    return Buffer.from(out, "latin1");
  }

  private relaxedField(f: HeaderField): string {
    let canonical = this.relaxed.get(f);
    if (canonical === undefined) {
      canonical = relaxedHeader(f.raw);
      this.relaxed.set(f, canonical);
    }
    return canonical;
  }

  private indexFields(): FieldIndex {
    const index: FieldIndex = new Map();
    for (let i = this.fields.length - 1; i >= 0; i--) {
      const f = this.fields[i]!;
      const list = index.get(f.name);
      if (list === undefined) index.set(f.name, [f]);
      else list.push(f);
    }
    return index;
  }
}

/** crypto.verify with a callback: the runtime verifies on its thread pool and calls back on the event loop. */
function verifyAsync(algorithm: string | null, data: Buffer, key: KeyObject, signature: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    cryptoVerify(algorithm, data, key, signature, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}
