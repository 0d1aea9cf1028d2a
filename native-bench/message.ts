/**
 * Pre-built message bytes: headers, a body padded to the requested size, dot-stuffed (RFC 5321 §4.5.2) and
 * terminated with CRLF "." CRLF, all in one buffer per session and size. The Message-ID carries a fixed-width hex
 * counter that is rewritten in place before each send, so a message costs no allocation. Rewriting is safe because
 * a session changes the buffer only after the server's reply to the previous end of data, when every byte of it
 * has been taken by the kernel.
 */
import { DotStuffer } from "../src/protocol/index.ts";

const COUNTER_DIGITS = 12;
const HEX = "0123456789abcdef";
const enc = new TextEncoder();

export interface MessageSpec {
  /** Bytes of the message before dot-stuffing (headers + body, the prefix not counted), at least the header size. */
  size: number;
  from: string;
  to: string;
  /** Distinguishes the sessions and runs in the Message-ID (letters, digits, dots). */
  tag: string;
  /** Header fields (each ending CRLF) put first, e.g. a DKIM-Signature made over the rest (Message-ID unsigned). */
  prefix?: string;
  /** The Date field's value; default: now. */
  date?: string;
  /** The body's exact size (the same body whatever the header fields), instead of what `size` leaves. */
  bodySize?: number;
}

export class MessageTemplate {
  /** The wire bytes: stuffed message plus the end-of-data marker. */
  readonly bytes: Uint8Array;
  /** Message size as the server stores it (before stuffing, without the terminator). */
  readonly size: number;
  private readonly counterAt: number;

  constructor(spec: MessageSpec) {
    // The prefix comes on top of `size`, so that a signature over the rest covers the very body it was made for.
    const prefix = enc.encode(spec.prefix ?? "");
    const head =
      `From: <${spec.from}>\r\n` +
      `To: <${spec.to}>\r\n` +
      `Subject: ringmta bench ${spec.size} bytes\r\n` +
      `Date: ${spec.date ?? new Date().toUTCString().replace("GMT", "+0000")}\r\n` +
      `Message-ID: <${"0".repeat(COUNTER_DIGITS)}.${spec.tag}@bench.ringmta>\r\n` +
      `MIME-Version: 1.0\r\n` +
      `Content-Type: text/plain; charset=us-ascii\r\n` +
      `\r\n`;
    const headBytes = enc.encode(head);
    const bodyBytes = spec.bodySize ?? Math.max(spec.size - headBytes.length, 2);
    const raw = new Uint8Array(prefix.length + headBytes.length + bodyBytes);
    raw.set(prefix, 0);
    raw.set(headBytes, prefix.length);
    fillBody(raw, prefix.length + headBytes.length);
    this.size = raw.length;

    const parts: Uint8Array[] = [];
    const stuffer = new DotStuffer();
    stuffer.push(raw, (b) => parts.push(b));
    parts.push(stuffer.end());
    let total = 0;
    for (const p of parts) total += p.length;
    this.bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      this.bytes.set(p, at);
      at += p.length;
    }
    // Headers never start with "." so stuffing leaves them where they were.
    this.counterAt = prefix.length + head.indexOf("Message-ID: <") + "Message-ID: <".length;
  }

  /** The message as stored (unstuffed, without the end-of-data marker), with the counter as it is now. */
  unstuffed(): Uint8Array {
    const b = this.bytes.subarray(0, this.bytes.length - 3);
    const out: number[] = [];
    for (let i = 0; i < b.length; i++) {
      // A stuffed line starts with ".." (RFC 5321 §4.5.2): drop the first dot.
      if (b[i] === 46 && b[i + 1] === 46 && (i === 0 || b[i - 1] === 10)) continue;
      out.push(b[i]!);
    }
    return Uint8Array.from(out);
  }

  /** Writes `n` into the Message-ID and returns the bytes to send. */
  stamp(n: number): Uint8Array {
    const b = this.bytes;
    let v = n;
    for (let i = this.counterAt + COUNTER_DIGITS - 1; i >= this.counterAt; i--) {
      b[i] = HEX.charCodeAt(v % 16);
      v = Math.floor(v / 16);
    }
    return b;
  }
}

/**
 * Fills raw[from..] with 78-octet text lines (76 characters + CRLF) and a shorter last line, always ending in CRLF.
 * Characters cycle through letters and digits so the body does not compress to nothing in transit or on disk.
 */
function fillBody(raw: Uint8Array, from: number): void {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let col = 0;
  let k = 0;
  const end = raw.length - 2;
  for (let i = from; i < end; i++) {
    if (col === 76 && i + 1 < end) {
      raw[i] = 13;
      raw[++i] = 10;
      col = 0;
      continue;
    }
    raw[i] = alphabet.charCodeAt(k++ % alphabet.length);
    col++;
  }
  raw[end] = 13;
  raw[end + 1] = 10;
}
