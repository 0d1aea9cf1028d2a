/**
 * The Sender Rewriting Scheme (CONTRACT "Forwarding"): the envelope sender of a forwarded copy becomes
 * `SRS0=<hash>=<tt>=<domain>=<local>@<srs domain>`, so that the next hop's SPF check sees our domain, and a bounce
 * to that address can be turned back into the original sender — but only for addresses we made (the hash) and
 * only for a while (the timestamp), or the SRS domain would be an open relay for anyone who writes SRS0=....
 *
 * The form is the one libsrs2 and postsrsd write ("shortcut" SRS0, postsrsd's src/srs2.c), so an address either
 * makes can be read by the other when they share the secret:
 * - tt: days since the epoch modulo 1024, as two characters of the base32 alphabet A-Z2-7 (high 5 bits first);
 *   read case-insensitively.
 * - hash: HMAC-SHA1(secret, tt + domain + local) with each part lower-cased (ASCII only, as libsrs2's C-locale
 *   tolower), the first 4 characters of its base64. We write base64url ("-" and "_", postsrsd 2.x: "+" is a
 *   common recipient delimiter and "/" troubles some mail stores) and accept the "+" "/" alphabet of libsrs2 too;
 *   compared case-insensitively, because some MTAs lower-case local parts (which costs the hash about 4 of its
 *   24 bits).
 * - age: valid while today is at most 21 days after tt (libsrs2's default maxage; CONTRACT: "older than 21 days"
 *   is expired). A tt "in the future" has wrapped: it is about 1024 days old.
 * - the original local part is everything after the fourth "=", so a local part with "=" or "+" comes back whole;
 *   the domain cannot hold "=".
 * SRS1 (the "guarded" form a second forwarder writes for an SRS0 sender) is not made: an SRS0 sender from another
 * forwarder is wrapped in SRS0 again, which every hop reverses in turn; an SRS1 address is "not-srs" here.
 *
 * Here in policy/ because the policy is where a recipient is decided (RCPT reversal) and where alias targets are
 * known (forwarding); it is pure but for node:crypto's HMAC (no I/O; the time is an argument).
 */
import { createHmac } from "node:crypto";
import { formatPath, splitAddress, utf8Length } from "../mail/index.ts";

const DAY_MS = 86_400_000;
/** Two base32 characters: 10 bits of day number (libsrs2 SRS_TIME_SLOTS). */
const TIME_SLOTS = 1024;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HASH_LENGTH = 4;
/** CONTRACT "Forwarding": an SRS address older than 21 days is expired. */
export const SRS_MAX_AGE_DAYS = 21;
/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets. */
const MAX_ADDRESS = 254;

export type SrsReversal =
  | { ok: true; address: string } // the original sender, in RFC 5321 form
  | { ok: false; reason: "forged" | "expired" | "not-srs" };

/** ASCII-only lower case, as libsrs2 folds the hashed parts (a non-ASCII letter is hashed as it is). */
function lowerAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function timestamp(now: number): string {
  const day = Math.floor(now / DAY_MS);
  return BASE32[(day >> 5) & 31]! + BASE32[day & 31]!;
}

function hash(secret: string, tt: string, domain: string, local: string): string {
  const mac = createHmac("sha1", secret).update(lowerAscii(tt)).update(lowerAscii(domain)).update(lowerAscii(local)).digest();
  // The first 4 base64 characters are the top 24 bits: 3 bytes, 6 bits each.
  const bits = (mac[0]! << 16) | (mac[1]! << 8) | mac[2]!;
  let out = "";
  for (let shift = 18; shift >= 0; shift -= 6) out += BASE64URL[(bits >> shift) & 63];
  return out;
}

/** One hash character for comparison: case folded, "+" and "/" read as "-" and "_" (postsrsd base64_equivalent). */
function hashChar(c: string): string {
  return c === "+" ? "-" : c === "/" ? "_" : c.toLowerCase();
}

function sameHash(given: string, made: string): boolean {
  if (given.length !== HASH_LENGTH) return false;
  let diff = 0;
  for (let i = 0; i < HASH_LENGTH; i++) diff |= hashChar(given[i]!) === hashChar(made[i]!) ? 0 : 1;
  return diff === 0;
}

/** Days between tt and now (modulo 1024, as far back as the 10 bits reach); null: tt is not two base32 chars. */
function ageDays(tt: string, now: number): number | null {
  if (tt.length !== 2) return null;
  const hi = BASE32.indexOf(tt[0]!.toUpperCase());
  const lo = BASE32.indexOf(tt[1]!.toUpperCase());
  if (hi < 0 || lo < 0) return null;
  const then = (hi << 5) | lo;
  const today = Math.floor(now / DAY_MS) % TIME_SLOTS;
  return (today - then + TIME_SLOTS) % TIME_SLOTS;
}

/**
 * The SRS0 address for `sender` (an address as the envelope holds it) in `srsDomain` at time `now` (ms), or null
 * when there is nothing to rewrite: the null path, an address without a domain, or a result longer than a path may
 * be (the next hop would refuse it, and so would our own RCPT when it bounced).
 */
export function srsForward(secret: string, srsDomain: string, sender: string, now: number): string | null {
  if (sender === "") return null;
  const { localPart, domain } = splitAddress(sender);
  if (domain === "" || localPart === "") return null;
  const tt = timestamp(now);
  const address = formatPath(`SRS0=${hash(secret, tt, domain, localPart)}=${tt}=${domain}=${localPart}`, srsDomain);
  return utf8Length(address) <= MAX_ADDRESS ? address : null;
}

/**
 * The original sender of an SRS0 address (only its local part is read: which domain receives SRS is the caller's
 * business), or why there is none: "not-srs" (no `SRS0` prefix, any case, followed by "=", "+" or "-"), "forged"
 * (malformed after the prefix, or the hash is not ours), "expired" (ours, but older than 21 days).
 */
export function srsReverse(secret: string, address: string, now: number): SrsReversal {
  const { localPart } = splitAddress(address);
  if (localPart.length < 5 || localPart.slice(0, 4).toUpperCase() !== "SRS0" || !"=+-".includes(localPart[4]!)) {
    return { ok: false, reason: "not-srs" };
  }
  const rest = localPart.slice(5);
  const a = rest.indexOf("=");
  const b = a < 0 ? -1 : rest.indexOf("=", a + 1);
  const c = b < 0 ? -1 : rest.indexOf("=", b + 1);
  if (c < 0) return { ok: false, reason: "forged" };
  const given = rest.slice(0, a);
  const tt = rest.slice(a + 1, b);
  const domain = rest.slice(b + 1, c);
  const local = rest.slice(c + 1);
  if (domain === "" || local === "") return { ok: false, reason: "forged" };
  // The hash first: an address that is not ours learns nothing about its age.
  if (!sameHash(given, hash(secret, tt, domain, local))) return { ok: false, reason: "forged" };
  const age = ageDays(tt, now);
  if (age === null) return { ok: false, reason: "forged" };
  if (age > SRS_MAX_AGE_DAYS) return { ok: false, reason: "expired" };
  return { ok: true, address: formatPath(local, domain) };
}
