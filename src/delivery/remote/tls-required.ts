/**
 * The `TLS-Required: No` header field (RFC 8689 §5): the sender asks that the recipient domain's TLS policy
 * (DANE, MTA-STS) be ignored for this message, e.g. to report a certificate problem to its postmaster. Only the
 * header block is read, and only its first 64 KiB: the field is looked for where a writer would put it, at a
 * bounded cost whatever the message.
 */
import type { StoredMessage } from "../../mail/index.ts";

const MAX_HEADER = 64 * 1024;
const dec = new TextDecoder("latin1");

/** The header block of `message` (up to the empty line, at most MAX_HEADER bytes), as text. */
function headerBlock(message: StoredMessage): string {
  let text = "";
  for (const chunk of message.chunks()) {
    text += dec.decode(chunk.subarray(0, MAX_HEADER - text.length));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) return text.slice(0, end + 2);
    if (text.length >= MAX_HEADER) break;
  }
  return text;
}

/** True when the message carries `TLS-Required: No` (field name and value case-insensitive, folding allowed). */
export function tlsRequiredNo(message: StoredMessage): boolean {
  const h = headerBlock(message).replace(/\r\n[ \t]+/g, " ");
  return /^TLS-Required[ \t]*:[ \t]*No[ \t]*$/im.test(h);
}
