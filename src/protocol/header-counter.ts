/**
 * Counts "Received:" trace fields in the header section for loop detection (RFC 5321 §6.3; CONTRACT max_hops).
 * Works on any chunking and stops looking at the first empty line, so a large body costs nothing.
 */

const CR = 13;
const LF = 10;
/** "received" lower-case; field names compare case-insensitively (RFC 5322 §1.2.2). */
const NAME = [114, 101, 99, 101, 105, 118, 101, 100];
const COLON = 58;
const SP = 32;
const HTAB = 9;

/** Matched bytes of NAME at the start of the current line; SKIP: the rest of the line is not of interest. */
const SKIP = -1;

export class ReceivedCounter {
  private matched = 0;
  private done = false;
  private n = 0;

  get count(): number {
    return this.n;
  }

  reset(): void {
    this.matched = 0;
    this.done = false;
    this.n = 0;
  }

  /** Feed message bytes in order (any chunking). */
  feed(bytes: Uint8Array): void {
    if (this.done) return;
    const len = bytes.length;
    let m = this.matched;
    let i = 0;
    while (i < len) {
      if (m === SKIP) {
        const lf = bytes.indexOf(LF, i);
        if (lf === -1) break;
        i = lf + 1;
        m = 0;
        continue;
      }
      let b = bytes[i];
      if (m === 0 && (b === CR || b === LF)) {
        // The empty line ends the header section (RFC 5322 §2.1).
        this.done = true;
        return;
      }
      if (m === NAME.length) {
        // RFC 5322 §4.5.3 obs-optional: field-name *WSP ":" — "Received :" is a Received field too, and
        // whoever reads the message counts it as one, so the loop limit must.
        if (b === SP || b === HTAB) {
          i++;
          continue;
        }
        if (b === COLON) this.n++;
        m = SKIP;
        continue;
      }
      if (b >= 65 && b <= 90) b |= 32;
      if (b === NAME[m]) {
        m++;
        i++;
      } else {
        m = SKIP;
      }
    }
    this.matched = m;
  }
}
