/**
 * SASL decoding for SMTP AUTH (RFC 4954) — pure, no I/O.
 * PLAIN: RFC 4616 (authzid NUL authcid NUL passwd). LOGIN: the de-facto "Username:"/"Password:" exchange
 * (draft-murchison-sasl-login), base64 at every step.
 */

export type SaslMechanism = "PLAIN" | "LOGIN";
export const SASL_MECHANISMS: readonly SaslMechanism[] = ["PLAIN", "LOGIN"];

export type Credentials = { user: string; password: string };

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 (RFC 4648 §4, no whitespace, padded). Returns null when it is not base64. */
export function decodeBase64(s: string): Uint8Array | null {
  if (s.length % 4 !== 0 || !B64.test(s)) return null;
  return new Uint8Array(Buffer.from(s, "base64"));
}

export function encodeBase64(s: string): string {
  return Buffer.from(s, "utf8").toString("base64");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function text(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd. An authzid different from the authcid
 * would mean "act as someone else", which we do not allow: it makes the credentials invalid (null user).
 */
export function decodePlain(bytes: Uint8Array): Credentials | "malformed" {
  const first = bytes.indexOf(0);
  const second = first < 0 ? -1 : bytes.indexOf(0, first + 1);
  if (first < 0 || second < 0 || bytes.indexOf(0, second + 1) >= 0) return "malformed";
  const authz = text(bytes.subarray(0, first));
  const user = text(bytes.subarray(first + 1, second));
  const password = text(bytes.subarray(second + 1));
  if (authz === null || user === null || password === null || user === "") return "malformed";
  if (authz !== "" && authz.toLowerCase() !== user.toLowerCase()) return { user: "", password: "" };
  return { user, password };
}

export function decodeText(bytes: Uint8Array): string | null {
  return text(bytes);
}

/** Base64 of the LOGIN prompts, RFC 4954 §4 server challenges. */
export const LOGIN_USER_PROMPT = "334 VXNlcm5hbWU6"; // "Username:"
export const LOGIN_PASS_PROMPT = "334 UGFzc3dvcmQ6"; // "Password:"
