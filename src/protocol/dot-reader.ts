/**
 * The DATA reader (RFC 5321 §4.1.1.4, §4.5.2): finds the end of data, removes dot-stuffing and refuses bare CR and
 * bare LF (§2.3.8). End of data is exactly CR LF "." CR LF; anything close to it ("\n.\r\n", "\r\n.\n", "\r.\r\n",
 * ...) is an error, never an end, so a message cannot smuggle a second transaction past another MTA that reads
 * line ends differently. A tiny named state, starting "as if after CRLF" (chasquid dotreader.go).
 */

/** read() needs more input: everything given was consumed. */
export const DATA_MORE = -1;
/** A bare CR or bare LF was seen: the caller replies 521 5.5.2 and closes. */
export const DATA_BARE_NEWLINE = -2;

const CR = 13;
const LF = 10;
const DOT = 46;

/** At the start of a line (the previous bytes were CR LF, or data just began). */
const LINE_START = 0;
/** Inside a line. */
const IN_LINE = 1;
/** Inside a line, the last byte was CR (already emitted; LF must follow). */
const AFTER_CR = 2;
/** A "." began the line; it is held back (it is either stuffing or the end marker). */
const AFTER_DOT = 3;
/** "." CR began the line; LF ends the data. */
const AFTER_DOT_CR = 4;
/** A bare CR or LF was seen; only reset() leaves this state. */
const FAILED = 5;

export class DotReader {
  private state = LINE_START;

  reset(): void {
    this.state = LINE_START;
  }

  /**
   * Consume buf[start..end). Calls emit(slice) with subarrays of buf (zero copy) holding the unstuffed message
   * bytes, in order. Returns the index just past the terminating CRLF.CRLF (the rest is pipelined commands),
   * DATA_MORE when everything was consumed and more is needed, or DATA_BARE_NEWLINE on a bare CR or LF.
   */
  read(buf: Uint8Array, start: number, end: number, emit: (bytes: Uint8Array) => void): number {
    if (this.state === FAILED) return DATA_BARE_NEWLINE;
    // indexOf searches to the end of the array; a view ending at `end` keeps it inside the window.
    const v = end === buf.length ? buf : buf.subarray(0, end);
    let st = this.state;
    let i = start;
    let seg = start; // first byte not yet emitted
    while (i < end) {
      switch (st) {
        case IN_LINE: {
          // Jump line by line with memchr-speed scans: the next CR must be immediately followed by the next LF.
          const cr = v.indexOf(CR, i);
          const lf = v.indexOf(LF, i);
          if (cr === -1) {
            if (lf !== -1) return this.fail();
            i = end;
          } else if (lf === cr + 1) {
            i = lf + 1;
            st = LINE_START;
          } else if (lf === -1 && cr === end - 1) {
            i = end;
            st = AFTER_CR;
          } else {
            // An LF before the CR (bare LF) or a CR followed by something else (bare CR).
            return this.fail();
          }
          break;
        }
        case LINE_START:
          if (v[i] === DOT) {
            // §4.5.2: the first "." of a line is removed; whether it is the end marker shows from what follows.
            if (i > seg) emit(v.subarray(seg, i));
            i++;
            seg = i;
            st = AFTER_DOT;
          } else {
            st = IN_LINE;
          }
          break;
        case AFTER_CR:
          if (v[i] !== LF) return this.fail();
          i++;
          st = LINE_START;
          break;
        case AFTER_DOT: {
          const b = v[i];
          if (b === CR) {
            // The CR of "." CR LF is never content: either LF follows (end) or it is a bare CR (error).
            i++;
            seg = i;
            st = AFTER_DOT_CR;
          } else if (b === LF) {
            return this.fail();
          } else {
            st = IN_LINE;
          }
          break;
        }
        case AFTER_DOT_CR:
          if (v[i] !== LF) return this.fail();
          this.state = LINE_START;
          return i + 1;
      }
    }
    if (end > seg) emit(v.subarray(seg, end));
    this.state = st;
    return DATA_MORE;
  }

  private fail(): number {
    this.state = FAILED;
    return DATA_BARE_NEWLINE;
  }
}
