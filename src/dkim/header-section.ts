/**
 * The header section of a message as it streams (RFC 5322 §2.1: everything up to the first empty line), kept in
 * memory up to a bound: a client that sends a megabyte of header fields or ten thousand of them gets its message
 * through unsigned, in time linear in its size, never an unbounded buffer or a quadratic parse.
 */
import { Buffer } from "node:buffer";

const CR = 13;
const LF = 10;
const SP = 32;
const TAB = 9;

/** Limits of a header section we are prepared to sign. */
export const MAX_HEADER_BYTES = 1024 * 1024;
export const MAX_HEADER_FIELDS = 10_000;

export type HeaderState = "reading" | "done" | "too-large";

/** One header field as it appears, in latin1 (one char per byte), without its final line break. */
export interface HeaderField {
  /** Lower-case name, without WSP before the colon. */
  readonly name: string;
  readonly raw: string;
}

/** Bounds on a header section: octets, fields, and lines (continuation lines included). */
export interface HeaderLimits {
  readonly bytes: number;
  readonly fields: number;
  readonly lines?: number;
}

export class HeaderSectionReader {
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;
  private fields = 0;
  private lines = 0;
  private atLineStart = true;
  /** A CR at a line start: the next LF ends the section. */
  private crAtLineStart = false;
  state: HeaderState = "reading";

  constructor(private readonly limits: HeaderLimits = { bytes: MAX_HEADER_BYTES, fields: MAX_HEADER_FIELDS }) {}

  /**
   * Feeds bytes of the message from its start. Returns the offset in `bytes` where the body begins once the empty
   * line is found (the caller hashes the rest), -1 while the section goes on or after it was found too large.
   */
  feed(bytes: Uint8Array): number {
    if (this.state !== "reading") return -1;
    const n = bytes.length;
    let i = 0;
    while (i < n) {
      const b = bytes[i]!;
      if (this.crAtLineStart) {
        this.crAtLineStart = false;
        if (b === LF) return this.finish(bytes, i + 1);
        this.atLineStart = false; // a CR that starts a line is content of a (malformed) field line
      } else if (this.atLineStart) {
        if (b === LF) return this.finish(bytes, i + 1);
        if (b === CR) {
          this.crAtLineStart = true;
          i++;
          continue;
        }
        if (b !== SP && b !== TAB && ++this.fields > this.limits.fields) return this.tooLarge();
        this.atLineStart = false;
      }
      // The rest of the line: jump to its LF.
      const lf = bytes.indexOf(LF, i);
      if (lf === -1) break;
      if (++this.lines > (this.limits.lines ?? Infinity)) return this.tooLarge();
      i = lf + 1;
      this.atLineStart = true;
    }
    return this.keep(bytes, n) ? -1 : this.tooLarge();
  }

  /** The fields, in order, once the section is complete (or the message ended without a body). */
  parse(): HeaderField[] {
    return splitFields(this.section().toString("latin1"));
  }
  /** The bytes read so far (the whole section, its empty line included, once it is complete). */
  section(): Buffer {
    if (this.chunks.length === 1) return Buffer.from(this.chunks[0]!.buffer, this.chunks[0]!.byteOffset, this.chunks[0]!.length);
    const all = Buffer.allocUnsafe(this.bytes);
    let off = 0;
    for (const c of this.chunks) {
      all.set(c, off);
      off += c.length;
    }
    this.chunks.length = 0;
    this.chunks.push(all);
    return all;
  }

  private keep(bytes: Uint8Array, end: number): boolean {
    if (this.bytes + end > this.limits.bytes) return false;
    this.chunks.push(bytes.slice(0, end));
    this.bytes += end;
    return true;
  }

  private finish(bytes: Uint8Array, bodyStart: number): number {
    if (!this.keep(bytes, bodyStart)) return this.tooLarge();
    this.state = "done";
    return bodyStart;
  }

  private tooLarge(): number {
    this.state = "too-large";
    this.chunks.length = 0;
    this.bytes = 0;
    return -1;
  }
}

/** RFC 5322 §3.6.8 ftext: printable US-ASCII but ":" (the text before the first colon cannot hold one). */
function isFieldName(text: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Splits a header section (latin1) into fields; continuation lines (starting with WSP) belong to the field above.
 * A line that is no field (no colon, WSP or other bytes in the name, a continuation at the top) comes back with the
 * name "". A field's raw text is its lines without their line breaks' final CR LF (or bare LF), joined with CRLF:
 * one slice of the section when its lines end in CRLF, as they do on the wire. Lines are found with indexOf, not
 * split off one by one (this runs for every message the checks see; header-section.test.ts compares it with the
 * line-by-line reading on random sections).
 */
export function splitFields(text: string): HeaderField[] {
  const out: HeaderField[] = [];
  const n = text.length;
  /** The current field: where it starts, where its last line's content ends; -1 before the first. */
  let start = -1;
  let end = 0;
  /** The current field joined line by line, once one of its lines ended in a bare LF (no slice is its raw then). */
  let joined: string | null = null;
  let bareLf = false;
  const push = (): void => {
    if (start < 0) return;
    const raw = joined ?? text.slice(start, end);
    const colon = raw.indexOf(":");
    // RFC 5322 §2.2/§3.6.8: a line without a colon is no field, and neither is one with WSP before the colon
    // (obsolete syntax, §4.5, that dkimpy refuses): both kept with the name "".
    out.push({ name: colon > 0 && isFieldName(raw, colon) ? raw.slice(0, colon).toLowerCase() : "", raw });
    start = -1;
    joined = null;
  };
  let ls = 0;
  for (;;) {
    let le = text.indexOf("\n", ls);
    const lastLine = le < 0;
    if (lastLine) le = n;
    const ce = le > ls && text.charCodeAt(le - 1) === CR ? le - 1 : le;
    // The empty line ends the header section.
    if (ce === ls) break;
    const first = text.charCodeAt(ls);
    if (first === SP || first === TAB) {
      // A continuation line; at the very top it continues nothing (malformed, name "").
      if (start < 0) out.push({ name: "", raw: text.slice(ls, ce) });
      else {
        if (joined !== null || bareLf) joined = `${joined ?? text.slice(start, end)}\r\n${text.slice(ls, ce)}`;
        end = ce;
      }
    } else {
      push();
      start = ls;
      end = ce;
    }
    if (lastLine) break;
    bareLf = ce === le;
    ls = le + 1;
  }
  push();
  return out;
}
