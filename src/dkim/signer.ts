/**
 * DKIM signing (RFC 6376; ed25519-sha256 RFC 8463), c=relaxed/relaxed, no l=, From over-signed. The body hash is
 * made while the message streams (RelaxedBodyHash), the header section is kept up to a bound (HeaderSectionReader),
 * and the signature fields are made at the end. Kept free of the session and the spool, so that the inbound stage,
 * our DSNs (signMessage) and ARC sealing can all use it.
 *
 * Why our own and not mailauth's DkimSigner: the signer is a node:stream Writable whose async writes are buffered
 * when they are not awaited (an observer's write is synchronous), i.e. a second copy of a large message, and its
 * header scan pushes every byte through an array; the canonicalization and hashing here are ~200 lines, checked
 * against dkimpy, OpenDKIM and mailauth's own verifier in the tests.
 */
import { Buffer } from "node:buffer";
import { createHash, sign as cryptoSign, type KeyObject } from "node:crypto";
import { domainToASCII } from "node:url";
import { RelaxedBodyHash } from "./body-hash.ts";
import { HeaderSectionReader, splitFields, type HeaderField } from "./header-section.ts";

export type DkimAlgorithm = "rsa-sha256" | "ed25519-sha256";

export interface DkimKey {
  /** The signing domain (d=), lower-case A-labels. */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  readonly key: KeyObject;
  /** Where it was read from (for messages). */
  readonly file: string;
}

/** Signing domain → its keys, one per selector; nearest-parent lookup (CONTRACT "DKIM"). */
export class DkimKeyring {
  constructor(private readonly byDomain: ReadonlyMap<string, ReadonlyArray<DkimKey>>) {}

  get size(): number {
    return this.byDomain.size;
  }

  /** The keys of `domain` or of its nearest parent that has any; [] when none. */
  forDomain(domain: string): ReadonlyArray<DkimKey> {
    let d = domain.toLowerCase().replace(/\.$/, "");
    for (;;) {
      const keys = this.byDomain.get(d);
      if (keys !== undefined && keys.length > 0) return keys;
      const dot = d.indexOf(".");
      if (dot < 0) return [];
      d = d.slice(dot + 1);
    }
  }
}

/**
 * The fields we sign when present (RFC 6376 §5.4.1's list, minus what relays rewrite): the ones that say who wrote
 * what, when, and how it is to be read. Received and Return-Path are not signed (they are added on the way).
 */
export const SIGNED_FIELDS: readonly string[] = [
  "from",
  "sender",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "to",
  "cc",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "content-id",
  "content-description",
  "resent-date",
  "resent-from",
  "resent-sender",
  "resent-to",
  "resent-cc",
  "resent-message-id",
  "in-reply-to",
  "references",
  "list-id",
  "list-help",
  "list-unsubscribe",
  "list-unsubscribe-post",
  "list-subscribe",
  "list-post",
  "list-owner",
  "list-archive",
];

const MAX_LINE = 78;

/** A field value that relaxed canonicalization leaves as it is, but for WSP after the colon: no fold, TAB, WSP run or WSP at its end. */
const RELAXED_CHANGES = /[\t\r\n]| {2}| $/;

/** RFC 6376 §3.4.2 relaxed header canonicalization of one field (latin1, without its final CRLF). */
export function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(":");
  // WSP before ":" (obsolete) goes; without a colon the last character is dropped, as slice(0, -1) did.
  let end = colon >= 0 ? colon : Math.max(raw.length - 1, 0);
  while (end > 0 && isWsp(raw.charCodeAt(end - 1))) end--;
  const name = raw.slice(0, end).toLowerCase();
  let value = raw.slice(colon + 1);
  // Most values need only the WSP after the colon removed; the full rules run for the rest.
  if (RELAXED_CHANGES.test(value)) value = relaxedValue(value);
  else if (value.charCodeAt(0) === 32) value = value.slice(1);
  return `${name}:${value}`;
}

const isWsp = (c: number): boolean => c === 32 || c === 9;

/**
 * §3.4.2 for a field value: CRLFs removed, each run of WSP made one SP, the SP at either end removed. Only the runs
 * that are not already one SP are replaced (a run of two or more, or a lone HTAB: the regex matches a run from its
 * start), not every SP between words; the end SPs are found by char code, as anchored regex replaces scan the whole
 * value.
 */
function relaxedValue(value: string): string {
  const v = value.replace(/\r\n/g, "").replace(/[ \t]{2,}|\t/g, " ");
  const start = v.charCodeAt(0) === 32 ? 1 : 0;
  const end = v.length > start && v.charCodeAt(v.length - 1) === 32 ? v.length - 1 : v.length;
  return start === 0 && end === v.length ? v : v.slice(start, end);
}

/**
 * The domain of the single author address of the From field(s), lower-case A-labels; null when there is no From,
 * more than one, or the authors' domains differ (nothing to sign for: RFC 5322 §3.6 allows one From field).
 */
export function fromDomain(fields: ReadonlyArray<HeaderField>): string | null {
  const from = fields.filter((f) => f.name === "from");
  if (from.length !== 1) return null;
  let value = Buffer.from(from[0]!.raw.slice(from[0]!.raw.indexOf(":") + 1), "latin1").toString("utf8");
  // Quoted strings and comments may hold "@"; drop them (comments do not nest deeply in practice: strip repeatedly).
  value = value.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (let i = 0; i < 4 && /\([^()]*\)/.test(value); i++) value = value.replace(/\([^()]*\)/g, " ");
  const domains = new Set<string>();
  for (const m of value.matchAll(/@\s*([^\s<>,;:@"()\[\]]+)/g)) {
    const ascii = domainToASCII(m[1]!.replace(/\.$/, ""));
    if (ascii === "") return null;
    domains.add(ascii.toLowerCase());
  }
  return domains.size === 1 ? [...domains][0]! : null;
}

/** The h= list: each signed field as often as it occurs, From once more (over-signing: no From can be added). */
export function signedNames(fields: ReadonlyArray<HeaderField>): string[] {
  const count = new Map<string, number>();
  for (const f of fields) count.set(f.name, (count.get(f.name) ?? 0) + 1);
  const names: string[] = [];
  for (const n of SIGNED_FIELDS) {
    const c = (count.get(n) ?? 0) + (n === "from" ? 1 : 0);
    for (let i = 0; i < c; i++) names.push(n);
  }
  return names;
}

/** RFC 6376 §5.4.2: the i-th occurrence of a name in h= selects the i-th instance counted from the bottom. */
function headerHashInput(fields: ReadonlyArray<HeaderField>, names: ReadonlyArray<string>): string {
  const used = new Map<string, number>();
  let out = "";
  for (const name of names) {
    const skip = used.get(name) ?? 0;
    used.set(name, skip + 1);
    let seen = 0;
    for (let i = fields.length - 1; i >= 0; i--) {
      if (fields[i]!.name !== name) continue;
      if (seen++ === skip) {
        out += relaxedHeader(fields[i]!.raw) + "\r\n";
        break;
      }
    }
    // A name listed more often than it occurs selects the null string (the over-signed From).
  }
  return out;
}

/**
 * Folds atoms into lines of at most MAX_LINE octets where possible; `sep` goes before an atom on the same line.
 * `lines` hold the text without the TAB that starts each continuation line (counted here, added by the caller).
 */
function fold(lines: string[], atoms: ReadonlyArray<{ text: string; sep: string }>): void {
  for (const a of atoms) {
    const i = lines.length - 1;
    const last = lines[i]!;
    const width = (i === 0 ? 0 : 1) + last.length;
    if (width + a.sep.length + a.text.length > MAX_LINE && last !== "") lines.push(a.text);
    else lines[i] = last + a.sep + a.text;
  }
}

/** A tag, after a space when it shares a line with the one before. */
function tag(text: string): { text: string; sep: string } {
  return { text, sep: " " };
}

/** The field up to "b=" and the bytes its signature covers (RFC 6376 §3.7: the signed fields, then this one). */
function prepare(fields: ReadonlyArray<HeaderField>, bh: string, key: DkimKey, now: number): { head: string; data: Buffer } {
  const names = signedNames(fields);
  const lines = ["DKIM-Signature:"];
  fold(lines, [
    tag(`v=1;`),
    tag(`a=${key.algorithm};`),
    tag(`c=relaxed/relaxed;`),
    tag(`d=${key.domain};`),
    tag(`s=${key.selector};`),
    tag(`t=${Math.floor(now / 1000)};`),
  ]);
  fold(
    lines,
    names.map((n, i) => ({ text: (i === 0 ? "h=" : "") + n + (i === names.length - 1 ? ";" : ":"), sep: i === 0 ? " " : "" })),
  );
  fold(lines, [tag(`bh=${bh};`)]);
  const head = lines.join("\r\n\t") + "\r\n\tb=";
  const data = Buffer.from(headerHashInput(fields, names) + relaxedHeader(head), "latin1");
  // RFC 8463 §3: Ed25519 (PureEdDSA) signs the SHA-256 hash of the canonicalized header data.
  return { head, data: key.algorithm === "rsa-sha256" ? data : createHash("sha256").update(data).digest() };
}

const hashOf = (key: DkimKey): string | null => (key.algorithm === "rsa-sha256" ? "sha256" : null);

/** The field with the signature's base64 folded below "b=". */
function complete(head: string, signature: Buffer): string {
  const sig = signature.toString("base64");
  const out: string[] = [];
  const firstLen = MAX_LINE - "\tb=".length;
  out.push(sig.slice(0, firstLen));
  for (let i = firstLen; i < sig.length; i += MAX_LINE - 1) out.push(sig.slice(i, i + MAX_LINE - 1));
  return head + out.join("\r\n\t") + "\r\n";
}

/**
 * One DKIM-Signature field (with its final CRLF) over `fields` and the body hash `bh` (base64), made with `key`
 * at `now` (ms). The b= value always starts a line of its own, so the field hashed (with b= empty) and the field
 * written differ only in that value (RFC 6376 §3.7).
 */
export function signatureField(fields: ReadonlyArray<HeaderField>, bh: string, key: DkimKey, now: number): string {
  const { head, data } = prepare(fields, bh, key, now);
  return complete(head, cryptoSign(hashOf(key), data, key.key));
}

/** signatureField with the private-key operation on the runtime's thread pool (crypto.sign's callback form). */
export function signatureFieldAsync(fields: ReadonlyArray<HeaderField>, bh: string, key: DkimKey, now: number): Promise<string> {
  const { head, data } = prepare(fields, bh, key, now);
  return new Promise((resolve, reject) => {
    cryptoSign(hashOf(key), data, key.key, (err, signature) => (err ? reject(err) : resolve(complete(head, signature))));
  });
}

export type SignOutcome =
  | { kind: "signed"; domain: string; fields: string; keys: ReadonlyArray<DkimKey> }
  | { kind: "unsigned"; reason: "header-too-large" | "no-header-end" | "malformed-header" | "nul-octet" | "no-single-from" | "no-selectors" };

/**
 * One message's signing, fed as it streams: the header section is kept (bounded), the body only hashed. `end`
 * gives the DKIM-Signature fields for the From domain's (or nearest parent's) selectors.
 */
export class DkimSigning {
  private readonly header = new HeaderSectionReader();
  private readonly body = new RelaxedBodyHash();

  write(bytes: Uint8Array): void {
    if (this.header.state === "done") {
      this.body.update(bytes);
      return;
    }
    if (this.header.state === "too-large") return;
    const start = this.header.feed(bytes);
    if (start >= 0 && start < bytes.length) this.body.update(bytes.subarray(start));
  }

  end(keyring: DkimKeyring, now: number): SignOutcome {
    const w = this.what(keyring);
    if ("kind" in w) return w;
    return { kind: "signed", domain: w.keys[0]!.domain, fields: w.keys.map((k) => signatureField(w.fields, w.bh, k, now)).join(""), keys: w.keys };
  }

  /** end, with the signatures made on the runtime's thread pool (the event loop goes on meanwhile). */
  async endAsync(keyring: DkimKeyring, now: number): Promise<SignOutcome> {
    const w = this.what(keyring);
    if ("kind" in w) return w;
    const fields = await Promise.all(w.keys.map((k) => signatureFieldAsync(w.fields, w.bh, k, now)));
    return { kind: "signed", domain: w.keys[0]!.domain, fields: fields.join(""), keys: w.keys };
  }

  private what(
    keyring: DkimKeyring,
  ): SignOutcome | { fields: HeaderField[]; bh: string; keys: ReadonlyArray<DkimKey> } {
    if (this.header.state === "too-large") return { kind: "unsigned", reason: "header-too-large" };
    // No empty line after the header section: verifiers disagree on where such a message's header ends (mailauth
    // reads it as body), so it is not signed rather than signed in a way some verifier fails.
    if (this.header.state === "reading") return { kind: "unsigned", reason: "no-header-end" };
    const fields = this.header.parse();
    // A line in the header section that is no field: verifiers part ways (dkimpy refuses the message outright).
    if (fields.some((f) => f.name === "")) return { kind: "unsigned", reason: "malformed-header" };
    const bh = this.body.digest();
    // A NUL octet (forbidden in a message, RFC 5322 §2.3): OpenDKIM fails the signature, dkimpy passes it.
    if (this.body.sawNul || fields.some((f) => f.raw.includes("\0"))) return { kind: "unsigned", reason: "nul-octet" };
    const domain = fromDomain(fields);
    if (domain === null) return { kind: "unsigned", reason: "no-single-from" };
    const keys = keyring.forDomain(domain);
    if (keys.length === 0) return { kind: "unsigned", reason: "no-selectors" };
    return { fields, bh, keys };
  }
}

/**
 * Signs a whole message held in memory (our DSNs, ARC sealing of a stored message): the DKIM-Signature fields to
 * put on top for the From domain (a DSN's From is MAILER-DAEMON@<hostname>, so <hostname>'s domain or its nearest
 * parent with selectors signs it), or why not. For a message that arrives in chunks, feed a DkimSigning instead.
 */
export function signMessage(message: Uint8Array, keyring: DkimKeyring, now: number): SignOutcome {
  const s = new DkimSigning();
  s.write(message);
  return s.end(keyring, now);
}


