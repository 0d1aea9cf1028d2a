/**
 * DKIM (RFC 6376, RFC 8463) and ARC (RFC 8617) verification of one message as it streams in, and the ARC set we
 * add when we forward it. The header section is held (bounded) until its end; then one of two verifiers takes the
 * message:
 * - the common message, with no ARC field and no seal to make: our own DKIM verifier (dkim/verify.ts), which
 *   hashes the body as it streams and verifies the signatures on the runtime's thread pool. The From domains are
 *   read by checks/from-domains.ts.
 * - a message with ARC fields (checks.arc on) or one we may seal, and a header section we cannot split into
 *   fields: mailauth's DkimVerifier in its strict mode, fed the held header section and then the body, which
 *   validates the chain; the body hashes it asks for (DKIM, ARC-Message-Signature, our seal's) are made by dkim/'s
 *   hashers, and its per-byte line-ending pass by bareLfToCrlf.
 * Both report the same words: RFC 6376 §6.1.3 makes a body-hash mismatch a PERMFAIL (dkim=fail, CONTRACT "A DKIM
 * body-hash or signature mismatch is dkim=fail"), rsa-sha1 is refused (RFC 8301 §3.1), and every DKIM-Signature
 * gets a result, even one too broken to process (types.ts promises one outcome per field).
 */
import { Buffer } from "node:buffer";
import { authorDomains, domainsOf } from "./from-domains.ts";
import { memoize } from "./memo.ts";
import type { KeyObject } from "node:crypto";
import {
  bPrefix,
  DkimVerification,
  HeaderSectionReader,
  KEY_TOO_LARGE_REASON,
  keyRecordTooLarge,
  MAX_RSA_BITS,
  MAX_SIGNATURES,
  MIN_RSA_BITS,
  OVER_LIMIT,
  KEY_TOO_SMALL_REASON,
  RelaxedBodyHash,
  SimpleBodyHash,
  unverifiedVerdict,
  type HeaderField,
  type KeyLookup,
} from "../dkim/index.ts";
import { nodeDnsAdapter, type DnsLookup } from "../dns/index.ts";
import {
  mailauth,
  type DkimVerifierClass,
  type DkimVerifierInstance,
  type MailauthBodyHasher,
  type MailauthDkimResult,
  type ParsedHeader,
  type ParsedHeaders,
} from "./mailauth-lib.ts";
import type { ArcOutcome, DkimOutcome, DkimResult } from "./types.ts";

export { MAX_SIGNATURES, OVER_LIMIT };

export interface ArcSealer {
  readonly domain: string;
  readonly selector: string;
  /** The private key (our DkimKey.key), RSA or ed25519. */
  readonly key: KeyObject;
}

export interface VerifyOptions {
  dns: DnsLookup;
  /** checks.dkim: verify DKIM-Signature fields. */
  dkim: boolean;
  /** checks.arc: validate the ARC chain (and make sealing possible). */
  arc: boolean;
  sealer?: ArcSealer | null;
}

export interface VerifiedMessage {
  /** One entry per DKIM-Signature field, in the message's order; [] when unsigned or checks.dkim off. */
  readonly dkim: ReadonlyArray<DkimOutcome>;
  /** {result: "none", instance: 0} when checks.arc is off. */
  readonly arc: ArcOutcome;
  /** Distinct RFC5322.From domains, lower-case (DMARC needs exactly one). */
  readonly fromDomains: ReadonlyArray<string>;
  /**
   * The header section was over the bound (HEADER_TOO_LARGE) and not read: nothing is known of it, From included,
   * so a caller that enforces DMARC must not let such a message through as "no DMARC" (it would bypass p=reject).
   */
  readonly headerTooLarge: boolean;
  /**
   * RFC 8617 §5.1: the ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results fields (each CRLF-terminated,
   * folded) to put on top of the message, sealed with the construction's sealer; `authResults` is the value of our
   * Authentication-Results field. null when there is no sealer, checks.arc is off, the chain failed or is full.
   */
  seal(authResults: string, now: number): Promise<string | null>;
}

const KEY_TOO_LARGE = "EKEYTOOLARGE";

/**
 * The header section is held until its end (both verifiers need it whole to canonicalize), so it is bounded: past
 * 8 MiB or 50,000 lines (10,000 fields of 800 bytes fit) the message is not verified (dkim=permerror, arc=fail).
 * The line bound also keeps mailauth's header parser, which joins folded lines in quadratic time, fast.
 */
const MAX_HEADER_BYTES = 8 * 1024 * 1024;
const MAX_HEADER_LINES = 50_000;
const HEADER_TOO_LARGE = "header section too large to verify";

/** RFC 6376 §6.1.2 key-record problems (mailauth's comments for them): PERMFAIL, RFC 8601 permerror. */
const KEY_PERMERRORS = new Set([
  "no key",
  "unknown key version",
  "unknown key type",
  "invalid public key",
  "inappropriate hash algorithm",
  "key not for email",
  "inappropriate key algorithm",
]);

interface Capped extends DkimVerifierInstance {
  /** DKIM-Signature fields past MAX_SIGNATURES (not verified). */
  excess: ParsedHeader[];
  checkDkim: boolean;
  checkArc: boolean;
}

let cappedClass: (new (o: ConstructorParameters<DkimVerifierClass>[0]) => Capped) | null = null;

/** mailauth's DkimVerifier, shown a view of the header section without the fields we do not verify. */
function cappedVerifier(): new (o: ConstructorParameters<DkimVerifierClass>[0]) => Capped {
  if (cappedClass !== null) return cappedClass;
  const { DkimVerifier } = mailauth();
  const Base = DkimVerifier as unknown as new (o: ConstructorParameters<DkimVerifierClass>[0]) => DkimVerifierInstance;
  class CappedVerifier extends Base {
    excess: ParsedHeader[] = [];
    checkDkim = true;
    checkArc = true;

    constructor(o: ConstructorParameters<DkimVerifierClass>[0]) {
      super(o);
      // The seal's relaxed/sha256 body hash, registered by mailauth's constructor with its own hasher.
      if (this.sealBodyHashKey !== undefined) this.bodyHashes.set(this.sealBodyHashKey, ourBodyHasher("relaxed", "sha256", false)!);
    }

    /**
     * mailauth's parser makes each bare LF a CRLF by looking at every byte in JavaScript (0.8 s of a 100 MB
     * body); bareLfToCrlf does the same with the runtime's indexOf.
     */
    override *ensureLinebreaks(input: Buffer): Generator<Buffer> {
      const before = this.lastByte;
      if (input.length > 0) this.lastByte = input[input.length - 1];
      yield* bareLfToCrlf(input, before);
    }

    /**
     * Every body hash (DKIM-Signature, ARC-Message-Signature, the seal's) is made by dkim/'s hashers: the same
     * RFC 6376 §3.4.3/§3.4.4 canonicalization as mailauth's, without reading the body a byte at a time in
     * JavaScript (with bareLfToCrlf, a 100 MiB message with an ARC set: 1.4 s → 0.54 s, 0.3 s unchecked).
     */
    override addBodyHash(bodyCanon: string, hashAlgo: string, maxBodyLength: number | string | false): string {
      const key = [bodyCanon, hashAlgo, maxBodyLength].join(":");
      if (this.bodyHashes.has(key)) return key;
      const ours = ourBodyHasher(bodyCanon, hashAlgo, maxBodyLength);
      if (ours === null) return super.addBodyHash(bodyCanon, hashAlgo, maxBodyLength);
      this.bodyHashes.set(key, ours);
      return key;
    }

    override async messageHeaders(headers: ParsedHeaders): Promise<void> {
      const sigs = this.checkDkim ? headers.parsed.filter((h) => h.key === "dkim-signature") : [];
      const kept = new Set(sigs.slice(0, MAX_SIGNATURES));
      this.excess = sigs.slice(MAX_SIGNATURES);
      const view: ParsedHeaders = {
        original: headers.original,
        parsed: headers.parsed.filter((h) =>
          h.key === "dkim-signature" ? kept.has(h) : this.checkArc || !h.key.startsWith("arc-"),
        ),
      };
      await super.messageHeaders(view);
      // Signatures are checked against the whole header section (h= may name any field, RFC 6376 §5.4.2).
      this.headers = headers;
    }
  }
  cappedClass = CappedVerifier as unknown as new (o: ConstructorParameters<DkimVerifierClass>[0]) => Capped;
  return cappedClass;
}

/**
 * dkim/'s body hasher in the shape mailauth's verifier feeds and reads; null for a canonicalization or hash we do
 * not make (mailauth's own hasher then reports on it). `maxBodyLength`: l= as mailauth read it ("" or false: none).
 */
function ourBodyHasher(bodyCanon: string, hashAlgo: string, maxBodyLength: number | string | false): MailauthBodyHasher | null {
  const canon = bodyCanon.toLowerCase();
  if ((canon !== "simple" && canon !== "relaxed") || (hashAlgo !== "sha256" && hashAlgo !== "sha1")) return null;
  const limit = typeof maxBodyLength === "number" && maxBodyLength >= 0 ? maxBodyLength : Infinity;
  const h = canon === "relaxed" ? new RelaxedBodyHash(hashAlgo, limit) : new SimpleBodyHash(hashAlgo, limit);
  return {
    update: (chunk) => h.update(chunk),
    digest: () => h.digest(),
    setContentType: () => {},
    getMimeStructureStart: () => undefined,
  };
}

/** Our resolver in mailauth's shape, refusing oversized key records (dkim/'s keyRecordTooLarge). */
function keyResolver(dns: DnsLookup): (name: string, type: string) => Promise<unknown[]> {
  const { resolve } = nodeDnsAdapter(dns);
  return async (name, type) => {
    const answer = await resolve(name, type);
    if (type === "TXT" && name.toLowerCase().includes("._domainkey.")) {
      for (const rec of answer as string[][]) {
        if (keyRecordTooLarge(rec.join(""))) {
          throw Object.assign(new Error(`${name}: ${KEY_TOO_LARGE_REASON}`), { code: KEY_TOO_LARGE });
        }
      }
    }
    return answer;
  };
}

/** Our resolver as dkim/'s key-lookup port. */
function keyLookup(dns: DnsLookup): KeyLookup {
  return async (name) => {
    const r = await dns.lookup(name, "TXT");
    return r.status === "ok" ? { status: "ok", records: r.records } : { status: r.status };
  };
}

function dkimOutcome(r: MailauthDkimResult): DkimOutcome {
  const comment = typeof r.status.comment === "string" ? r.status.comment : undefined;
  let result: DkimResult;
  let reason = comment;
  switch (r.status.result) {
    case "pass":
    case "fail":
    case "policy":
    case "temperror":
    case "permerror":
      result = r.status.result;
      break;
    default:
      // RFC 8601 §2.7.1: neutral for a signature with syntax errors; a missing or unusable key is a PERMFAIL
      // of RFC 6376 §6.1.2, which RFC 8601 reports as permerror.
      result = comment !== undefined && KEY_PERMERRORS.has(comment) ? "permerror" : "neutral";
  }
  if (comment?.includes(KEY_TOO_LARGE)) {
    result = "policy";
    reason = KEY_TOO_LARGE_REASON;
  } else if (r.status.result === "policy" && reason === undefined) {
    reason = KEY_TOO_SMALL_REASON;
  } else if (result === "pass" && (r.modulusLength ?? 0) > MAX_RSA_BITS) {
    result = "policy";
    reason = `key too large (${r.modulusLength} bits)`;
  }
  return {
    result,
    domain: (r.signingDomain ?? "").toLowerCase(),
    selector: r.selector ?? "",
    algorithm: r.algo ?? "",
    b: bPrefix(r.signature),
    ...(reason !== undefined && result !== "pass" ? { reason } : {}),
  };
}

/** A signature past MAX_SIGNATURES: policy, with what can be read of it. */
function unverified(h: ParsedHeader): DkimOutcome {
  return unverifiedVerdict(h.line.toString());
}

const NON_ASCII = /[^\x00-\x7f]/;
const CRLF = Buffer.from("\r\n");

/**
 * A chunk of the message with each bare LF made CRLF, in pieces, as mailauth's message parser does before it hashes
 * (its ensureLinebreaks; test/checks/line-endings.test.ts compares the two): the same pieces, the LFs found by the
 * runtime's indexOf instead of a loop over every byte. `before`: the last byte of the previous chunk (an LF first in
 * a chunk may end a CRLF), undefined at the start of the message.
 */
export function* bareLfToCrlf(input: Buffer, before: number | undefined): Generator<Buffer> {
  let pos = 0;
  for (let i = input.indexOf(0x0a); i >= 0; i = input.indexOf(0x0a, i + 1)) {
    if ((i > 0 ? input[i - 1] : before) === 0x0d) continue;
    yield i === pos ? Buffer.from(CRLF) : Buffer.concat([input.subarray(pos, i), CRLF]);
    pos = i + 1;
  }
  if (pos === 0) yield input;
  else if (pos < input.length) yield input.subarray(pos);
}

/**
 * The author domains of one From field value, remembered (checks/memo.ts) for values of a reasonable length: a
 * sender's From is the same every time.
 */
const oneFromDomains = memoize((value: string): ReadonlyArray<string> => authorDomains([value]), { entries: 4096, keyLength: 512 });

/** The author domains of the From fields (RFC 5322 §3.6.2, groups included, RFC 6854): checks/from-domains.ts. */
function fromFieldDomains(fields: ReadonlyArray<HeaderField>): ReadonlyArray<string> {
  const values: string[] = [];
  for (const f of fields) {
    if (f.name !== "from") continue;
    const line = NON_ASCII.test(f.raw) ? Buffer.from(f.raw, "latin1").toString("utf8") : f.raw;
    values.push(line.slice(line.indexOf(":") + 1));
  }
  // The usual message has one From field.
  return values.length === 1 ? oneFromDomains(values[0]!) : authorDomains(values);
}

/** One result for a message that could not be verified at all (no signature could be read). */
function wholeMessage(reason: string): DkimOutcome {
  return { result: "permerror", domain: "", selector: "", algorithm: "", b: "", reason };
}

const NO_ARC: ArcOutcome = { result: "none", instance: 0 };

/** The fields whose presence makes mailauth verify the message (RFC 8617 §4.1: the fields of an ARC set). */
const ARC_FIELDS = new Set(["arc-seal", "arc-message-signature", "arc-authentication-results"]);

type Phase =
  /** The header section is being read. */
  | { kind: "header" }
  /** Ours: DKIM signatures (null with checks.dkim off) and the From domains. */
  | { kind: "fast"; dkim: DkimVerification | null; fromDomains: ReadonlyArray<string> }
  | { kind: "mailauth"; v: Capped };

export class MessageVerifier {
  private readonly header = new HeaderSectionReader({ bytes: MAX_HEADER_BYTES, fields: MAX_HEADER_LINES, lines: MAX_HEADER_LINES });
  private phase: Phase = { kind: "header" };
  private failure: Error | null = null;
  private state: "open" | "ended" | "aborted" | "oversized" = "open";
  private resolverFn: ((name: string, type: string) => Promise<unknown[]>) | null = null;
  private readonly sealKey: string | null;

  constructor(private readonly o: VerifyOptions) {
    this.sealKey = o.sealer && o.arc ? (o.sealer.key.export({ format: "pem", type: "pkcs8" }) as string) : null;
  }

  write(bytes: Uint8Array): void {
    if (this.state !== "open" || bytes.length === 0) return;
    const p = this.phase;
    if (p.kind === "fast") {
      if (p.dkim?.hashing) p.dkim.update(bytes);
      return;
    }
    if (p.kind === "mailauth") {
      // The bytes are lent for this call only: mailauth keeps header chunks until the section ends, so copy.
      p.v.write(Buffer.from(bytes));
      return;
    }
    // The reader copies what it keeps.
    const start = this.header.feed(bytes);
    if (this.header.state === "too-large") {
      this.state = "oversized";
      return;
    }
    if (start < 0) return;
    this.begin();
    if (start < bytes.length) this.write(bytes.subarray(start));
  }

  async end(): Promise<VerifiedMessage> {
    if (this.state === "aborted") return this.result([], NO_ARC, [], null);
    if (this.state === "oversized") {
      return this.result(this.o.dkim ? [wholeMessage(HEADER_TOO_LARGE)] : [], this.o.arc ? { result: "fail", instance: 0, reason: HEADER_TOO_LARGE } : NO_ARC, [], null);
    }
    this.state = "ended";
    // No end of the header section: mailauth reads such a message its own way.
    const p = this.phase.kind === "header" ? this.startMailauth() : this.phase;
    if (p.kind === "fast") return this.result(p.dkim ? await p.dkim.finish() : [], NO_ARC, p.fromDomains, null);
    const v = (p as { v: Capped }).v;
    await new Promise<void>((res) => {
      v.on("finish", () => res());
      v.on("close", () => res());
      v.on("error", () => res());
      v.end();
    });
    if (this.failure !== null || v.headers === false) {
      const reason = `message could not be parsed${this.failure ? `: ${this.failure.message}` : ""}`.slice(0, 200);
      return this.result(this.o.dkim ? [wholeMessage(reason)] : [], NO_ARC, domainsOf(v.headerFrom ?? []), null);
    }
    const dkim = this.o.dkim
      ? [...v.results.filter((r) => r.status.result !== "none").map(dkimOutcome), ...v.excess.map(unverified)]
      : [];
    let arc = NO_ARC;
    if (this.o.arc) {
      const r = await mailauth().arc(v.arc, { resolver: this.resolver(), minBitLength: MIN_RSA_BITS, strict: true });
      const result = r.status.result === "pass" || r.status.result === "fail" ? r.status.result : "none";
      arc = { result, instance: typeof r.i === "number" ? r.i : 0, ...(r.status.comment && result !== "pass" ? { reason: r.status.comment } : {}) };
    }
    return this.result(dkim, arc, domainsOf(v.headerFrom), v);
  }

  abort(): void {
    if (this.state === "open") this.state = "aborted";
    if (this.phase.kind === "mailauth") this.phase.v.destroy();
    this.phase = { kind: "header" };
  }

  /** The header section is complete: pick the verifier (see the top of this file). */
  private begin(): void {
    const fields = this.header.parse();
    if (fields.some((f) => f.name === "" || (this.o.arc && ARC_FIELDS.has(f.name))) || this.sealKey !== null) {
      this.startMailauth();
      return;
    }
    const dkim = this.o.dkim ? new DkimVerification(fields, { lookup: keyLookup(this.o.dns) }) : null;
    this.phase = { kind: "fast", dkim, fromDomains: fromFieldDomains(fields) };
  }

  private resolver(): (name: string, type: string) => Promise<unknown[]> {
    return (this.resolverFn ??= keyResolver(this.o.dns));
  }

  /** mailauth takes the message: it is written the header section held so far. */
  private startMailauth(): { kind: "mailauth"; v: Capped } {
    const Verifier = cappedVerifier();
    const v = new Verifier({
      resolver: this.resolver(),
      minBitLength: MIN_RSA_BITS,
      strict: true,
      // With a seal to make, mailauth also hashes the body relaxed/sha256 for the ARC-Message-Signature's bh=.
      ...(this.sealKey !== null ? { seal: { signingDomain: this.o.sealer!.domain, selector: this.o.sealer!.selector, privateKey: this.sealKey } } : {}),
    });
    v.checkDkim = this.o.dkim;
    v.checkArc = this.o.arc;
    v.on("error", (err) => {
      this.failure ??= err;
    });
    const held = this.header.section();
    if (held.length > 0) v.write(Buffer.from(held));
    const p = { kind: "mailauth" as const, v };
    this.phase = p;
    return p;
  }

  private result(dkim: DkimOutcome[], arc: ArcOutcome, fromDomains: ReadonlyArray<string>, v: Capped | null): VerifiedMessage {
    const sealer = this.o.sealer ?? null;
    const key = this.sealKey;
    return {
      dkim,
      arc,
      fromDomains,
      headerTooLarge: this.state === "oversized",
      async seal(authResults: string, now: number): Promise<string | null> {
        // RFC 8617 §5.1.2: a failed chain is not sealed further (cv=fail would end it for every later hop).
        if (sealer === null || key === null || v === null || v.headers === false || arc.result === "fail") return null;
        const bodyHash = v.seal?.bodyHash;
        if (bodyHash === undefined) return null;
        try {
          const r = await mailauth().createSeal(false, {
            headers: v.headers,
            arc: v.arc,
            seal: {
              signingDomain: sealer.domain,
              selector: sealer.selector,
              privateKey: key,
              cv: arc.result,
              authResults: authResults.replace(/\r?\n$/, ""),
              signTime: new Date(now),
              bodyHash,
            },
            strict: true,
          });
          // No set when the chain already has 50 (RFC 8617 §4.2.1) or the key cannot sign.
          if (r.headers.length !== 3) return null;
          return r.headers.map((h) => `${h.replace(/\r?\n$/, "")}\r\n`).join("");
        } catch {
          return null;
        }
      },
    };
  }
}
