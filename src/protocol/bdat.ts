/**
 * CHUNKING (RFC 3030) helpers. BDAT chunks are counted, not delimited, so only the bare CR / bare LF rule
 * (RFC 5321 §2.3.8; CONTRACT: 521 5.5.2) needs state across chunks: a CR at the end of one chunk may be completed by
 * the LF that starts the next.
 */

const CR = 13;
const LF = 10;

export class BareNewlineCheck {
  private pendingCr = false;

  reset(): void {
    this.pendingCr = false;
  }

  /** False when a bare CR/LF is in buf[start..end) given the previous chunks. */
  scan(buf: Uint8Array, start: number, end: number): boolean {
    if (start >= end) return true;
    const v = end === buf.length ? buf : buf.subarray(0, end);
    let i = start;
    if (this.pendingCr) {
      if (v[i] !== LF) return false;
      this.pendingCr = false;
      i++;
    } else if (v[i] === LF) {
      return false;
    }
    while (i < end) {
      const cr = v.indexOf(CR, i);
      const lf = v.indexOf(LF, i);
      if (cr === -1) return lf === -1;
      if (lf === cr + 1) {
        i = lf + 1;
      } else if (lf === -1 && cr === end - 1) {
        this.pendingCr = true;
        return true;
      } else {
        return false;
      }
    }
    return true;
  }

  /** At the end of the message: false if it ended with a pending CR. */
  finish(): boolean {
    const ok = !this.pendingCr;
    this.pendingCr = false;
    return ok;
  }
}
