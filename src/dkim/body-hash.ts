/**
 * The body canonicalizations of RFC 6376 §3.4.3 ("simple") and §3.4.4 ("relaxed"), fed incrementally and hashed
 * as they go (SHA-256; SHA-1 so that a verifier can name what it refuses), so a body is never held in memory. Relaxed:
 * runs of WSP become one SP, WSP at a line end goes, empty lines at the end of the body go, and a non-empty body
 * ends with CRLF. A CR that is not part of CRLF is content; a bare LF ends a line
 * (the session refuses both, but a DSN or a stored file handed to signMessage may be less strict).
 */
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";

const CR = 13;
const LF = 10;
const SP = 32;
const TAB = 9;
/**
 * Canonical bytes of lines that need changes are collected here and handed to the hash in blocks (lines already
 * canonical are hashed straight from the input). Small, and taken from Buffer's pool without zeroing: a verifier
 * makes one of these per message, and a 16 KiB zeroed block was a measurable share of verifying a small message.
 */
const BLOCK = 2048;
const CRLF = [CR, LF];

/**
 * bytes[from, to) (a line without its CRLF, not empty) is its own relaxed form: no TAB, no CR, no SP followed by SP
 * and no SP at its end; and it has no NUL (left to the slow path, which notes it).
 */
function canonicalLine(bytes: Uint8Array, from: number, to: number): boolean {
  for (let k = from; k < to; k++) {
    const b = bytes[k]!;
    if (b > SP) continue;
    if (b === TAB || b === CR || b === 0) return false;
    if (b === SP && (k + 1 === to || bytes[k + 1] === SP)) return false;
  }
  return true;
}

/** The hash algorithms of DKIM's a= tag (RFC 6376 §3.3; sha1 only so a verifier can say why it refuses it). */
export type BodyHashAlgorithm = "sha256" | "sha1";

/** A body hash being computed: update() with the body as it streams, digest() once at its end. */
export interface BodyHasher {
  update(bytes: Uint8Array): void;
  /** The body hash, base64 (the bh= value). The hasher cannot be fed afterwards. */
  digest(): string;
}

/**
 * The hash of the canonical body, cut at `limit` octets: RFC 6376 §3.4.5 (l=) counts the body "after
 * canonicalization", so the cut is made here, below the canonicalization.
 */
class LimitedHash {
  private readonly hash: Hash;
  private left: number;
  constructor(algorithm: BodyHashAlgorithm, limit: number) {
    this.hash = createHash(algorithm);
    this.left = limit;
  }
  update(bytes: Uint8Array): void {
    if (this.left <= 0) return;
    if (bytes.length > this.left) bytes = bytes.subarray(0, this.left);
    this.left -= bytes.length;
    this.hash.update(bytes);
  }
  digest(): string {
    return this.hash.digest("base64");
  }
}

export class RelaxedBodyHash implements BodyHasher {
  private readonly hash: LimitedHash;
  private readonly out: Uint8Array = Buffer.allocUnsafe(BLOCK);
  private used = 0;
  /** WSP seen since the last content byte of this line: one SP is written if content follows on the line. */
  private wsp = false;
  /** A CR held back until the next byte says whether it ends a line. */
  private cr = false;
  /** The current line has content (so its line break is written, not held). */
  private content = false;
  /** Empty lines (after WSP removal) not yet written: dropped if the body ends before more content. */
  private emptyLines = 0;
  /** Canonical bytes hashed so far (tests and metrics). */
  length = 0;
  /** The body holds a NUL octet (RFC 5322 §2.3 and RFC 6152 forbid it; OpenDKIM fails such signatures). */
  sawNul = false;

  /** `limit`: hash only the first so many canonical octets (a signature's l= tag). */
  constructor(algorithm: BodyHashAlgorithm = "sha256", limit = Infinity) {
    this.hash = new LimitedHash(algorithm, limit);
  }

  update(bytes: Uint8Array): void {
    const n = bytes.length;
    let i = 0;
    // Start of a run of complete lines that are already canonical, hashed straight from `bytes` (one hash call
    // for most chunks instead of a copy per byte); -1: none open.
    let span = -1;
    while (i < n) {
      if (!this.cr && !this.wsp && !this.content) {
        // At a line start: a line that ends in CRLF and needs no change passes through as it is.
        const lf = bytes.indexOf(LF, i);
        if (lf > i + 1 && bytes[lf - 1] === CR && canonicalLine(bytes, i, lf - 1)) {
          if (this.emptyLines > 0) {
            if (span >= 0) this.pass(bytes, span, i);
            span = -1;
            for (; this.emptyLines > 0; this.emptyLines--) {
              this.put(CR);
              this.put(LF);
            }
          }
          if (span < 0) {
            this.flush();
            span = i;
          }
          i = lf + 1;
          continue;
        }
      }
      if (span >= 0) {
        this.pass(bytes, span, i);
        span = -1;
      }
      // Byte by byte to the end of this line.
      for (; i < n; i++) {
        const b = bytes[i]!;
        if (b === LF) {
          this.cr = false;
          this.lineEnd();
          i++;
          break;
        }
        if (this.cr) {
          this.cr = false;
          this.contentByte(CR);
        }
        if (b === SP || b === TAB) this.wsp = true;
        else if (b === CR) this.cr = true;
        else this.contentByte(b);
      }
    }
    if (span >= 0) this.pass(bytes, span, n);
  }

  /** Hashes bytes[from, to) as they are (canonical lines; the collected bytes before them are already flushed). */
  private pass(bytes: Uint8Array, from: number, to: number): void {
    this.hash.update(bytes.subarray(from, to));
    this.length += to - from;
  }

  /** The body hash, base64 (the bh= value). The hasher cannot be fed afterwards. */
  digest(): string {
    if (this.cr) {
      this.cr = false;
      this.contentByte(CR);
    }
    // §3.4.4: a non-empty body that does not end with CRLF gets one; the empty lines at the end are ignored.
    if (this.content) this.lineEnd();
    this.flush();
    return this.hash.digest();
  }

  private lineEnd(): void {
    this.wsp = false;
    if (this.content) {
      this.put(CR);
      this.put(LF);
      this.content = false;
    } else {
      this.emptyLines++;
    }
  }

  private contentByte(b: number): void {
    if (b === 0) this.sawNul = true;
    if (this.emptyLines > 0) {
      for (; this.emptyLines > 0; this.emptyLines--) {
        this.put(CRLF[0]!);
        this.put(CRLF[1]!);
      }
    }
    if (this.wsp) {
      this.put(SP);
      this.wsp = false;
    }
    this.put(b);
    this.content = true;
  }

  private put(b: number): void {
    if (this.used === BLOCK) this.flush();
    this.out[this.used++] = b;
  }

  private flush(): void {
    if (this.used === 0) return;
    this.hash.update(this.out.subarray(0, this.used));
    this.length += this.used;
    this.used = 0;
  }
}

/**
 * The "simple" body canonicalization of RFC 6376 §3.4.3: the body as it is, except that the empty lines at its end
 * go and it ends with exactly one CRLF (an empty body is one CRLF). Only the CRLFs at the end of what has arrived
 * are held back, as a count: they are the body's end unless content follows.
 */
export class SimpleBodyHash implements BodyHasher {
  private readonly hash: LimitedHash;
  /** CRLF pairs at the end of what arrived. */
  private crlfs = 0;
  /** A CR after them, the last byte so far: an LF next makes it one more pair. */
  private cr = false;
  constructor(algorithm: BodyHashAlgorithm = "sha256", limit = Infinity) {
    this.hash = new LimitedHash(algorithm, limit);
  }
  update(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    let from = 0;
    if (this.cr) {
      // The held CR ends a line when an LF follows; otherwise it is content.
      if (bytes[0] === LF) {
        this.cr = false;
        this.crlfs++;
        from = 1;
      } else {
        this.release();
      }
    }
    // The run of CRLF pairs at the end of the chunk, and a CR after it.
    let end = bytes.length;
    const cr = end > from && bytes[end - 1] === CR;
    if (cr) end--;
    while (end - from >= 2 && bytes[end - 2] === CR && bytes[end - 1] === LF) end -= 2;
    if (end > from) {
      this.release();
      this.hash.update(bytes.subarray(from, end));
      this.crlfs = 0;
      this.cr = false;
    }
    this.crlfs += (bytes.length - (cr ? 1 : 0) - end) / 2;
    this.cr = cr;
  }
  /** What was held back is content after all: written out. */
  private release(): void {
    for (; this.crlfs > 0; this.crlfs--) this.hash.update(CRLF_BYTES);
    if (this.cr) this.hash.update(CR_BYTE);
    this.cr = false;
  }
  digest(): string {
    if (this.cr) this.release();
    // The held pairs are the empty lines at the end (and the last line's break): one CRLF stands for them all.
    this.crlfs = 0;
    this.hash.update(CRLF_BYTES);
    return this.hash.digest();
  }
}

const CRLF_BYTES = Uint8Array.of(CR, LF);
const CR_BYTE = Uint8Array.of(CR);
