/**
 * The "relaxed" body canonicalization of RFC 6376 §3.4.4, fed incrementally and hashed as it goes (SHA-256), so a
 * body is never held in memory: runs of WSP become one SP, WSP at a line end goes, empty lines at the end of the
 * body go, and a non-empty body ends with CRLF. A CR that is not part of CRLF is content; a bare LF ends a line
 * (the session refuses both, but a DSN or a stored file handed to signMessage may be less strict).
 */
import { createHash, type Hash } from "node:crypto";

const CR = 13;
const LF = 10;
const SP = 32;
const TAB = 9;
/** Canonical bytes are collected here and handed to the hash in blocks. */
const BLOCK = 16384;
const CRLF = [CR, LF];

export class RelaxedBodyHash {
  private readonly hash: Hash = createHash("sha256");
  private readonly out = new Uint8Array(BLOCK);
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

  update(bytes: Uint8Array): void {
    const n = bytes.length;
    for (let i = 0; i < n; i++) {
      const b = bytes[i]!;
      if (b === LF) {
        this.cr = false;
        this.lineEnd();
        continue;
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

  /** The body hash, base64 (the bh= value). The hasher cannot be fed afterwards. */
  digest(): string {
    if (this.cr) {
      this.cr = false;
      this.contentByte(CR);
    }
    // §3.4.4: a non-empty body that does not end with CRLF gets one; the empty lines at the end are ignored.
    if (this.content) this.lineEnd();
    this.flush();
    return this.hash.digest("base64");
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
