/**
 * Splits server bytes into SMTP replies (RFC 5321 §4.2: "code-text" continuation lines, "code text" last line)
 * without turning them into strings: the hot path sees only the 3-digit code of each complete reply. Lines are
 * captured as text only on request (EHLO keywords, the text of an unexpected reply).
 */

const LF = 10;
const CR = 13;
const DASH = 45;
const ZERO = 48;

export class ReplyScanner {
  /** Bytes of an unfinished line carried to the next chunk (rare: replies are short and arrive whole). */
  private carry: Uint8Array = new Uint8Array(0);
  /** When set, the lines of the current reply are kept as text in `lines`. */
  capture = false;
  lines: string[] = [];
  /** Bumped by reset(): a reset from inside onReply drops the rest of the chunk being scanned. */
  private epoch = 0;
  constructor(private readonly onReply: (code: number) => void) {}

  /** Forgets buffered bytes; used at STARTTLS so no plaintext read before the handshake is taken as a reply. */
  reset(): void {
    this.epoch++;
    this.carry = new Uint8Array(0);
    this.lines = [];
  }

  feed(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.carry.length > 0) {
      buf = new Uint8Array(this.carry.length + chunk.length);
      buf.set(this.carry, 0);
      buf.set(chunk, this.carry.length);
      this.carry = new Uint8Array(0);
    }
    const n = buf.length;
    const epoch = this.epoch;
    let start = 0;
    while (start < n) {
      const lf = buf.indexOf(LF, start);
      if (lf === -1) break;
      const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
      if (this.capture) this.lines.push(latin1(buf, start, end));
      const next = lf + 1;
      if (end - start >= 3 && (end - start === 3 || buf[start + 3] !== DASH)) {
        const code = (buf[start]! - ZERO) * 100 + (buf[start + 1]! - ZERO) * 10 + (buf[start + 2]! - ZERO);
        start = next;
        this.onReply(code >= 100 && code <= 599 ? code : 0);
        if (this.epoch !== epoch) return;
      } else {
        start = next;
      }
    }
    if (start < n) this.carry = buf.slice(start);
  }

  /** Starts capturing a fresh reply's lines. */
  startCapture(): void {
    this.capture = true;
    this.lines = [];
  }

  stopCapture(): string[] {
    const l = this.lines;
    this.capture = false;
    this.lines = [];
    return l;
  }
}

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}
