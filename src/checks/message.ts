/**
 * DKIM (RFC 6376, RFC 8463) and ARC (RFC 8617) verification of one message as it streams in, and the ARC set we
 * add when we forward it. mailauth's DkimVerifier hashes the body chunk by chunk (every body canonicalization a
 * signature asks for, one pass) and keeps only the header section; our dns/ resolver answers its key lookups.
 *
 * mailauth runs in its strict mode: RFC 6376 §6.1.3 makes a body-hash mismatch a PERMFAIL (dkim=fail, CONTRACT
 * "A DKIM body-hash or signature mismatch is dkim=fail"; the lenient mode says neutral), rsa-sha1 is refused
 * (RFC 8301 §3.1), and every DKIM-Signature gets a result, even one too broken to process (the lenient mode drops
 * those silently, and types.ts promises one outcome per field).
 */
import { Buffer } from "node:buffer";
import type { KeyObject } from "node:crypto";
import { nodeDnsAdapter, type DnsLookup } from "../dns/index.ts";
import {
  mailauth,
  type DkimVerifierClass,
  type DkimVerifierInstance,
  type MailauthDkimResult,
  type ParsedHeader,
  type ParsedHeaders,
} from "./mailauth-lib.ts";
import type { ArcOutcome, DkimOutcome, DkimResult } from "./types.ts";

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

/**
 * RFC 6376 §6.1: "Verifiers MAY limit the number of signatures they attempt to verify". Past the first ten
 * DKIM-Signature fields, each further one is reported as dkim=policy with OVER_LIMIT as its reason and is neither
 * hashed nor looked up: a message with 10,000 signatures costs ten verifications, not 10,000 body hashes.
 */
export const MAX_SIGNATURES = 10;
export const OVER_LIMIT = `not verified: over ${MAX_SIGNATURES} signatures per message (RFC 6376 section 6.1)`;

/** RFC 8301 §3.2: keys of 1024 bits and more are verified; under that, dkim=policy. */
const MIN_RSA_BITS = 1024;
/**
 * RFC 8301 §3.2: verifiers "MAY be able to validate signatures with larger keys" than 4096 bits; we accept up to
 * 8192 and call a larger key dkim=policy. A key record longer than an 8192-bit key needs (about 1,450 characters of
 * base64) by a wide margin is refused before it is parsed, so a 64 KB TXT answer costs no key parsing.
 */
const MAX_RSA_BITS = 8192;
const MAX_KEY_RECORD = 4096;
/** An RSA SubjectPublicKeyInfo is the modulus plus about 40 octets of DER; 8192 bits and a margin, in base64. */
const MAX_KEY_BASE64 = Math.ceil(((MAX_RSA_BITS / 8 + 100) * 4) / 3);
const KEY_TOO_LARGE = "EKEYTOOLARGE";
const KEY_TOO_LARGE_REASON = `key too large (over ${MAX_RSA_BITS} bits) or key record too long`;

/**
 * The header section is held until its end (mailauth needs it whole to canonicalize), so it is bounded: past
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

/** Our resolver in mailauth's shape, refusing oversized key records (see MAX_KEY_RECORD). */
function keyResolver(dns: DnsLookup): (name: string, type: string) => Promise<unknown[]> {
  const { resolve } = nodeDnsAdapter(dns);
  return async (name, type) => {
    const answer = await resolve(name, type);
    if (type === "TXT" && name.toLowerCase().includes("._domainkey.")) {
      for (const rec of answer as string[][]) {
        const txt = rec.join("");
        const p = txt.length <= MAX_KEY_RECORD ? /(?:^|;)[ \t]*p[ \t]*=([^;]*)/.exec(txt)?.[1]?.replace(/\s+/g, "") : undefined;
        if (txt.length > MAX_KEY_RECORD || (p !== undefined && p.length > MAX_KEY_BASE64)) {
          throw Object.assign(new Error(`${name}: ${KEY_TOO_LARGE_REASON}`), { code: KEY_TOO_LARGE });
        }
      }
    }
    return answer;
  };
}

/** The first 8 characters of b= (RFC 6008 §4); b= may be folded, FWS is not part of it. */
function bPrefix(b: string | undefined): string {
  return (b ?? "").replace(/[ \t\r\n]+/g, "").slice(0, 8);
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
    reason = `key too small (under ${MIN_RSA_BITS} bits, RFC 8301)`;
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

/** d=, s=, a=, b= of a signature we do not verify, read without a full parse (it may be anything). */
function unverified(h: ParsedHeader): DkimOutcome {
  const line = h.line.toString().slice(0, 4096);
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

function fromDomainsOf(addresses: ReadonlyArray<string>): string[] {
  const out = new Set<string>();
  for (const a of addresses) {
    const at = a.lastIndexOf("@");
    if (at < 0) continue;
    const d = a.slice(at + 1).trim().toLowerCase().replace(/\.$/, "");
    if (d !== "") out.add(d);
  }
  return [...out];
}

const NO_ARC: ArcOutcome = { result: "none", instance: 0 };

/**
 * Tracks where the header section ends (the first empty line, RFC 5322 §2.1; a bare LF counts as mailauth reads
 * it) and how big it has grown, so the bound on it is enforced before mailauth buffers more.
 */
class HeaderMeter {
  ended = false;
  bytes = 0;
  lines = 0;
  private lineStart = true;
  private crAtStart = false;
  /** Feeds bytes; false once the header section is over its bound. */
  feed(b: Uint8Array): boolean {
    for (let i = 0; i < b.length && !this.ended; i++) {
      const c = b[i]!;
      this.bytes++;
      if (this.lineStart && (c === 0x0a || (c === 0x0d && !this.crAtStart))) {
        if (c === 0x0a) this.ended = true;
        else this.crAtStart = true;
        continue;
      }
      if (this.crAtStart && c === 0x0a) {
        this.ended = true;
        continue;
      }
      this.lineStart = false;
      this.crAtStart = false;
      if (c === 0x0a) {
        this.lines++;
        this.lineStart = true;
      }
    }
    return this.bytes <= MAX_HEADER_BYTES && this.lines <= MAX_HEADER_LINES;
  }
}

export class MessageVerifier {
  private verifier: Capped | null;
  private readonly meter = new HeaderMeter();
  private failure: Error | null = null;
  private state: "open" | "ended" | "aborted" | "oversized" = "open";
  private readonly resolver: (name: string, type: string) => Promise<unknown[]>;
  private readonly sealKey: string | null;

  constructor(private readonly o: VerifyOptions) {
    this.resolver = keyResolver(o.dns);
    this.sealKey = o.sealer && o.arc ? (o.sealer.key.export({ format: "pem", type: "pkcs8" }) as string) : null;
    const Verifier = cappedVerifier();
    this.verifier = new Verifier({
      resolver: this.resolver,
      minBitLength: MIN_RSA_BITS,
      strict: true,
      // With a seal to make, mailauth also hashes the body relaxed/sha256 for the ARC-Message-Signature's bh=.
      ...(this.sealKey !== null ? { seal: { signingDomain: o.sealer!.domain, selector: o.sealer!.selector, privateKey: this.sealKey } } : {}),
    });
    this.verifier.checkDkim = o.dkim;
    this.verifier.checkArc = o.arc;
    this.verifier.on("error", (err) => {
      this.failure ??= err;
    });
  }

  write(bytes: Uint8Array): void {
    if (this.state !== "open" || this.verifier === null || bytes.length === 0) return;
    if (!this.meter.ended && !this.meter.feed(bytes)) {
      this.state = "oversized";
      this.verifier.destroy();
      this.verifier = null;
      return;
    }
    // The bytes are lent for this call only: mailauth keeps header chunks until the section ends, so copy.
    this.verifier.write(Buffer.from(bytes));
  }

  async end(): Promise<VerifiedMessage> {
    const v = this.verifier;
    if (this.state === "aborted") return this.result([], NO_ARC, [], null);
    if (this.state === "oversized" || v === null) {
      return this.result(this.o.dkim ? [{ result: "permerror", domain: "", selector: "", algorithm: "", b: "", reason: HEADER_TOO_LARGE }] : [], this.o.arc ? { result: "fail", instance: 0, reason: HEADER_TOO_LARGE } : NO_ARC, [], null);
    }
    this.state = "ended";
    await new Promise<void>((res) => {
      v.on("finish", () => res());
      v.on("close", () => res());
      v.on("error", () => res());
      v.end();
    });
    if (this.failure !== null || v.headers === false) {
      const reason = `message could not be parsed${this.failure ? `: ${this.failure.message}` : ""}`.slice(0, 200);
      return this.result(this.o.dkim ? [{ result: "permerror", domain: "", selector: "", algorithm: "", b: "", reason }] : [], NO_ARC, fromDomainsOf(v.headerFrom ?? []), null);
    }
    const dkim = this.o.dkim
      ? [...v.results.filter((r) => r.status.result !== "none").map(dkimOutcome), ...v.excess.map(unverified)]
      : [];
    let arc = NO_ARC;
    if (this.o.arc) {
      const r = await mailauth().arc(v.arc, { resolver: this.resolver, minBitLength: MIN_RSA_BITS, strict: true });
      const result = r.status.result === "pass" || r.status.result === "fail" ? r.status.result : "none";
      arc = { result, instance: typeof r.i === "number" ? r.i : 0, ...(r.status.comment && result !== "pass" ? { reason: r.status.comment } : {}) };
    }
    return this.result(dkim, arc, fromDomainsOf(v.headerFrom), v);
  }

  abort(): void {
    if (this.state === "open") this.state = "aborted";
    this.verifier?.destroy();
    this.verifier = null;
  }

  private result(dkim: DkimOutcome[], arc: ArcOutcome, fromDomains: string[], v: Capped | null): VerifiedMessage {
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
