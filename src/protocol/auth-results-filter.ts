/**
 * Removes forged Authentication-Results fields from a message as it streams (RFC 8601 §5: a border MTA removes the
 * fields that claim its own authserv-id before it adds its own; CONTRACT "Storage layout": those fields, compared
 * case-insensitively, are the only ones we ever remove). Only the header section is looked at; the body passes
 * through untouched. Works on any chunking.
 *
 * Memory is bounded: only an Authentication-Results field is held while it is read, and once HOLD_MAX bytes of one
 * are held the decision is made on them (the authserv-id is the field's first token, RFC 8601 §2.2), so a huge
 * field costs no more.
 */

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
/** "authentication-results" lower-case; field names compare case-insensitively (RFC 5322 §1.2.2). */
const NAME = new TextEncoder().encode("authentication-results");
/** Bytes of one Authentication-Results field held before deciding on its beginning. */
export const HOLD_MAX = 16 * 1024;

/** What the bytes of the current line are: passed on, held (a candidate field), dropped, or not yet known. */
type Disposition = "keep" | "hold" | "drop" | "name";

const latin1 = new TextDecoder("latin1");

/**
 * Does this field value (what follows "Authentication-Results:") carry `authservId`? RFC 8601 §2.2:
 * `[CFWS] authserv-id [CFWS authres-version] ( no-result / 1*resinfo ) [CFWS] CRLF`, authserv-id a token or a
 * quoted-string; comments may nest (RFC 5322 §3.2.2).
 */
export function carriesAuthservId(value: string, authservId: string): boolean {
  let i = 0;
  const n = value.length;
  const skipCfws = (): void => {
    for (;;) {
      while (i < n && (value[i] === " " || value[i] === "\t" || value[i] === "\r" || value[i] === "\n")) i++;
      if (value[i] !== "(") return;
      let depth = 0;
      for (; i < n; i++) {
        const c = value[i];
        if (c === "\\") i++;
        else if (c === "(") depth++;
        else if (c === ")" && --depth === 0) {
          i++;
          break;
        }
      }
    }
  };
  skipCfws();
  let id = "";
  if (value[i] === '"') {
    for (i++; i < n && value[i] !== '"'; i++) id += value[i] === "\\" ? value[++i] ?? "" : value[i];
  } else {
    const start = i;
    // RFC 2045 token: anything but SP, CTLs and tspecials; ';' ends it in practice.
    while (i < n && !/[\s()<>@,;:\\"/[\]?=]/.test(value[i]!)) i++;
    id = value.slice(start, i);
  }
  return id.length > 0 && id.toLowerCase() === authservId.toLowerCase();
}

export class OwnAuthResultsFilter {
  private done = false;
  private atLineStart = true;
  private line: Disposition = "keep";
  /** Bytes of NAME matched on the current line ("name" disposition). */
  private matched = 0;
  /** The current field is an Authentication-Results field: held until its end (or dropped once known ours). */
  private field: "none" | "held" | "dropping" = "none";
  private held: Uint8Array[] = [];
  private heldLen = 0;
  /** The current line's bytes while its field name is undecided. */
  private pending: Uint8Array[] = [];
  private readonly id: string;

  constructor(authservId: string) {
    this.id = authservId.toLowerCase();
  }

  reset(): void {
    this.done = false;
    this.atLineStart = true;
    this.line = "keep";
    this.matched = 0;
    this.field = "none";
    this.held = [];
    this.heldLen = 0;
    this.pending = [];
  }

  /**
   * Message bytes in order; `out` receives the bytes to keep, in order (views of `bytes` or copies: the caller
   * must use them before this returns, as with any lent chunk).
   */
  feed(bytes: Uint8Array, out: (b: Uint8Array) => void): void {
    if (this.done) return out(bytes);
    const len = bytes.length;
    // bytes[start, i) have the current line's disposition and are not yet passed on: kept lines are handed on in
    // one piece per chunk, not one per line, so a message costs its observers and the spool a write or two.
    let start = 0;
    const run = (end: number): void => {
      if (end > start) this.dispose(bytes.subarray(start, end), out);
      start = end;
    };
    for (let i = 0; i < len; i++) {
      if (!this.atLineStart && this.line !== "name") {
        // The rest of a line whose fate is known: straight to its end (native search, not a byte loop).
        const lf = bytes.indexOf(LF, i);
        if (lf < 0) break;
        i = lf;
      }
      let b = bytes[i]!;
      if (this.atLineStart) {
        this.atLineStart = false;
        if (b === SP || b === HTAB) {
          // A continuation line (RFC 5322 §2.2.3): it belongs to the current field.
          const next: Disposition = this.field === "held" ? "hold" : this.field === "dropping" ? "drop" : "keep";
          if (next !== this.line) run(i);
          this.line = next;
        } else {
          run(i);
          this.endField(out);
          if (b === CR || b === LF) {
            // The empty line ends the header section: the rest is body.
            this.done = true;
            return out(bytes.subarray(i));
          }
          // Only a field whose name starts with "a" can be Authentication-Results: the others are kept at once.
          this.line = (b | 32) === NAME[0] ? "name" : "keep";
          this.matched = 0;
        }
      }
      if (this.line === "name") {
        if (this.matched < NAME.length) {
          if (b >= 65 && b <= 90) b |= 32;
          if (b === NAME[this.matched]) this.matched++;
          else {
            run(i);
            this.decideName(false, out);
          }
        } else if (b === COLON) {
          run(i);
          this.decideName(true, out);
        } else if (b !== SP && b !== HTAB) {
          // RFC 5322 §4.5.3 obs-optional allows WSP before the colon; anything else is another field name.
          run(i);
          this.decideName(false, out);
        }
      }
      if (b === LF) {
        this.atLineStart = true;
        if (this.line === "keep") continue;
        run(i + 1);
        if (this.line === "name") this.decideName(false, out); // a line without a colon: not ours to judge
        if (this.field === "held" && this.heldLen > HOLD_MAX) this.decideEarly(out);
      }
    }
    run(len);
    if (this.field === "held" && this.heldLen > HOLD_MAX) this.decideEarly(out);
  }

  /** End of the message: whatever is still held or pending is decided now. */
  finish(out: (b: Uint8Array) => void): void {
    if (this.done) return;
    if (this.line === "name") this.decideName(false, out);
    this.endField(out);
    this.done = true;
  }

  private dispose(part: Uint8Array, out: (b: Uint8Array) => void): void {
    switch (this.line) {
      case "keep":
        return out(part);
      case "drop":
        return;
      case "hold":
        this.held.push(part.slice());
        this.heldLen += part.length;
        return;
      case "name":
        this.pending.push(part.slice());
        return;
    }
  }

  private decideName(isAuthResults: boolean, out: (b: Uint8Array) => void): void {
    const pending = this.pending;
    this.pending = [];
    if (isAuthResults) {
      this.field = "held";
      this.line = "hold";
      for (const p of pending) {
        this.held.push(p);
        this.heldLen += p.length;
      }
    } else {
      this.line = "keep";
      for (const p of pending) out(p);
    }
  }

  /** The held field has grown past HOLD_MAX: decide on its beginning, then keep or drop the rest as it comes. */
  private decideEarly(out: (b: Uint8Array) => void): void {
    const ours = this.isOurs();
    this.releaseHeld(ours, out);
    this.field = ours ? "dropping" : "none";
    if (this.line === "hold") this.line = ours ? "drop" : "keep";
  }

  /** A new line that is not a continuation: the field before it is complete. */
  private endField(out: (b: Uint8Array) => void): void {
    if (this.field === "held") this.releaseHeld(this.isOurs(), out);
    this.field = "none";
  }

  private isOurs(): boolean {
    let text = "";
    for (const h of this.held) text += latin1.decode(h);
    const colon = text.indexOf(":");
    return colon >= 0 && carriesAuthservId(text.slice(colon + 1), this.id);
  }

  private releaseHeld(drop: boolean, out: (b: Uint8Array) => void): void {
    const held = this.held;
    this.held = [];
    this.heldLen = 0;
    if (!drop) for (const h of held) out(h);
  }
}
