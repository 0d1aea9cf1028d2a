/**
 * Dot-stuffing for the outbound client (RFC 5321 §4.5.2): a line that begins with "." gets one more. Zero copy: a
 * stuffed dot is sent by emitting the original "." twice (the slice before it ends with it, the next starts at it).
 */

const CR = 13;
const LF = 10;
const DOT = 46;
/** The end-of-data sequences, shared: writers only read them (RFC 5321 §4.1.1.4). */
const END_AFTER_CRLF = Uint8Array.of(DOT, CR, LF);
const END_WITH_CRLF = Uint8Array.of(CR, LF, DOT, CR, LF);

export class DotStuffer {
  /** The next byte starts a line. */
  private lineStart = true;
  /** The last two bytes pushed were CR LF (or nothing was pushed). */
  private endsCrlf = true;
  private lastCr = false;

  reset(): void {
    this.lineStart = true;
    this.endsCrlf = true;
    this.lastCr = false;
  }

  /** Passes on this chunk's bytes with leading dots doubled, tracking line starts across chunks. */
  push(chunk: Uint8Array, out: (b: Uint8Array) => void): void {
    const n = chunk.length;
    if (n === 0) return;
    let seg = 0;
    let i = 0;
    if (this.lineStart && chunk[0] === DOT) {
      out(chunk.subarray(0, 1));
    }
    for (;;) {
      const lf = chunk.indexOf(LF, i);
      if (lf === -1 || lf + 1 >= n) break;
      if (chunk[lf + 1] === DOT) {
        out(chunk.subarray(seg, lf + 2));
        seg = lf + 1;
      }
      i = lf + 1;
    }
    out(seg === 0 ? chunk : chunk.subarray(seg));
    const last = chunk[n - 1];
    this.lineStart = last === LF;
    this.endsCrlf = last === LF && (n > 1 ? chunk[n - 2] === CR : this.lastCr);
    this.lastCr = last === CR;
  }

  /** Bytes that finish the data: CR LF if the message did not end with one, then "." CR LF. Shared: do not modify. */
  end(): Uint8Array {
    return this.endsCrlf ? END_AFTER_CRLF : END_WITH_CRLF;
  }
}
