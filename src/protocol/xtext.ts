/**
 * xtext (RFC 3461 §4): printable ASCII 33..126 except "+" and "=", which go as "+" and two upper-case hex digits;
 * used by ENVID, ORCPT and the MAIL AUTH= parameter (RFC 4954 §5).
 */

const HEX = "0123456789ABCDEF";
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  // Lower-case hex is not xtext, but Postfix and others accept it on input (robustness, RFC 1123 §1.2.2).
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Encode a string (its UTF-8 bytes) as xtext. */
export function encodeXtext(s: string): string {
  let out = "";
  for (const b of utf8.encode(s)) {
    out += b >= 33 && b <= 126 && b !== 43 && b !== 61 ? String.fromCharCode(b) : "+" + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/** True when `s` is well-formed xtext. */
export function isXtext(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 43) {
      // charCodeAt past the end is NaN, which hexValue rejects: a truncated "+X" is malformed.
      if (hexValue(s.charCodeAt(i + 1)) < 0 || hexValue(s.charCodeAt(i + 2)) < 0) return false;
      i += 2;
    } else if (c < 33 || c > 126 || c === 61) {
      return false;
    }
  }
  return true;
}

/** Decode xtext; null when malformed or when the decoded bytes are not valid UTF-8. */
export function decodeXtext(s: string): string | null {
  if (!isXtext(s)) return null;
  if (s.indexOf("+") === -1) return s;
  const bytes = new Uint8Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 43) {
      bytes[n++] = (hexValue(s.charCodeAt(i + 1)) << 4) | hexValue(s.charCodeAt(i + 2));
      i += 2;
    } else {
      bytes[n++] = c;
    }
  }
  try {
    return utf8Strict.decode(bytes.subarray(0, n));
  } catch {
    return null;
  }
}
