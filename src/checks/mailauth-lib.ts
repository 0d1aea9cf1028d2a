/**
 * The parts of mailauth 7.1.0 (pinned exactly in package.json) that checks/ uses, with the narrow types we rely on.
 * mailauth ships no types for its lib/ modules; the shapes below are read from its source (dkim/dkim-verifier.js,
 * arc/index.js, dmarc/get-dmarc-record.js).
 */
import type { Buffer } from "node:buffer";
// Static imports (CommonJS module.exports as the default), so that `bun build --compile` bundles them: a require()
// built at run time is not seen by the bundler and fails inside the binary.
import arcModule from "mailauth/lib/arc/index.js";
import verifierModule from "mailauth/lib/dkim/dkim-verifier.js";
import dmarcRecordModule from "mailauth/lib/dmarc/get-dmarc-record.js";

/** A header field as mailauth's parseHeaders gives it: lower-case name, the raw line (name, colon, value, folds). */
export interface ParsedHeader {
  key: string;
  line: Buffer | string;
}
export interface ParsedHeaders {
  parsed: ParsedHeader[];
  original: Buffer;
}

/** One result of DkimVerifier.results (RFC 8601 words, plus mailauth's details). */
export interface MailauthDkimResult {
  signingDomain?: string;
  selector?: string;
  algo?: string;
  signature?: string;
  modulusLength?: number;
  status: { result: string; comment?: string | false };
}

/** The ARC data DkimVerifier collects (chain and newest set), handed to arc() and createSeal(). */
export interface MailauthArcData {
  chain: unknown[] | false;
  lastEntry?: unknown;
  error?: unknown;
}

export interface MailauthArcResult {
  status: { result: string; comment?: string };
  i?: number | false;
}

export interface MailauthSealInput {
  signingDomain: string;
  selector: string;
  privateKey: string;
  cv: string;
  authResults: string;
  signTime: Date;
  bodyHash?: string;
}

export interface DkimVerifierInstance {
  headers: ParsedHeaders | false;
  results: MailauthDkimResult[];
  headerFrom: string[];
  arc: MailauthArcData;
  seal?: { bodyHash?: string };
  /** The body hashes being computed, by "canonicalization:hash:length" (mailauth's own key). */
  bodyHashes: Map<string, MailauthBodyHasher>;
  /** The key of the relaxed/sha256 body hash made for a seal, when sealing. */
  sealBodyHashKey?: string;
  /** Registers a body hash for a signature (mailauth calls it while reading the header section). */
  addBodyHash(bodyCanon: string, hashAlgo: string, maxBodyLength: number | string | false): string;
  /** The byte before the next chunk (mailauth's parser: an LF first in a chunk may end a CRLF). */
  lastByte?: number;
  /** Rewrites each bare LF of a chunk to CRLF, in pieces (mailauth's message parser). */
  ensureLinebreaks(input: Buffer): Generator<Buffer>;
  messageHeaders(headers: ParsedHeaders): Promise<void>;
  write(chunk: Uint8Array): boolean;
  end(cb?: () => void): void;
  destroy(err?: Error): void;
  on(ev: "finish" | "close", cb: () => void): void;
  on(ev: "error", cb: (err: Error) => void): void;
}

/**
 * What mailauth's verifier uses of a body hasher: fed the body (bare LFs already made CRLF), asked for the base64
 * digest once; the rest is reporting (lengths, the lenient mode's MIME-structure fallback) that the strict mode we
 * run does not act on. `hash` and `mimeStructureStart` are written onto it when the body ends.
 */
export interface MailauthBodyHasher {
  update(chunk: Uint8Array): void;
  digest(encoding: "base64"): string;
  setContentType(contentType: unknown): void;
  getMimeStructureStart(): number | undefined;
  hash?: string;
  mimeStructureStart?: number;
}

export type DkimVerifierClass = new (o: {
  resolver: (name: string, type: string) => Promise<unknown>;
  minBitLength: number;
  strict: boolean;
  seal?: { signingDomain: string; selector: string; privateKey: string };
}) => DkimVerifierInstance;

export interface DmarcRecordTags {
  p?: string;
  sp?: string;
  np?: string;
  adkim?: string;
  aspf?: string;
  pct?: number;
  t?: string;
  rua?: string;
}

export interface MailauthLib {
  DkimVerifier: DkimVerifierClass;
  arc(data: MailauthArcData, o: { resolver: unknown; minBitLength: number; strict: boolean }): Promise<MailauthArcResult>;
  createSeal(
    input: false,
    data: { headers: ParsedHeaders; arc: MailauthArcData; seal: MailauthSealInput; strict: boolean },
  ): Promise<{ headers: string[]; errors?: unknown[] }>;
  /** RFC 7489 §6.3 tag-list parse; null for a record with a duplicated tag (strict). */
  parseDmarcRecord(txt: string, o: { strict: boolean }): (DmarcRecordTags & { rr: string }) | null;
  /** RFC 7489 §6.6.3 step 6: the policy tags a record is applied with, null when it gets no DMARC processing. */
  getPolicyTags(record: DmarcRecordTags): { p: string; sp?: string; np?: string } | null;
}

let lib: MailauthLib | null = null;

export function mailauth(): MailauthLib {
  if (lib !== null) return lib;
  const verifier = verifierModule as unknown as { DkimVerifier: DkimVerifierClass };
  const arcLib = arcModule as unknown as Pick<MailauthLib, "arc" | "createSeal">;
  const dmarcRecord = dmarcRecordModule as unknown as Pick<MailauthLib, "parseDmarcRecord" | "getPolicyTags">;
  lib = {
    DkimVerifier: verifier.DkimVerifier,
    arc: arcLib.arc,
    createSeal: arcLib.createSeal,
    parseDmarcRecord: dmarcRecord.parseDmarcRecord,
    getPolicyTags: dmarcRecord.getPolicyTags,
  };
  return lib;
}
