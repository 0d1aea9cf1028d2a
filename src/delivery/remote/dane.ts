/**
 * DANE for SMTP (RFC 7672) over TLSA records (RFC 6698, usages and selectors as updated by RFC 7671): which TLSA
 * records a client can use, and whether a server's certificate chain matches one of them.
 *
 * Usable here (RFC 7672 §3.1): DANE-TA(2) and DANE-EE(3); PKIX-TA(0) and PKIX-EE(1) are not for SMTP and are
 * ignored. Selectors Cert(0) and SPKI(1); matching types Full(0), SHA2-256(1), SHA2-512(2). A record whose data
 * cannot be what its matching type says (a digest of the wrong length, a "full" value too large for a
 * certificate) is unusable, so absurd records cost nothing more than being skipped.
 *
 * DANE-EE(3): the leaf alone is compared; no name check and no expiry check (RFC 7672 §3.1.1). DANE-TA(2): some
 * certificate of the chain the server presented matches the record, the chain from the leaf up to it verifies
 * signature by signature, and the leaf carries a reference identifier: the MX host name (RFC 7672 §3.2.2).
 */
import { Buffer } from "node:buffer";
import { createHash, X509Certificate } from "node:crypto";
import type { TlsaRecord } from "../../dns/index.ts";

/** RFC 6698 §2.1.1 usages of RFC 7672. */
export const DANE_TA = 2;
export const DANE_EE = 3;

/** A certificate or key is never this large; a "full" TLSA value beyond it is garbage. */
const MAX_FULL = 16 * 1024;

/** The records a client may use (RFC 7672 §3.1); the rest are ignored. */
export function usableTlsa(records: readonly TlsaRecord[]): TlsaRecord[] {
  return records.filter((r) => {
    if (r.usage !== DANE_TA && r.usage !== DANE_EE) return false;
    if (r.selector !== 0 && r.selector !== 1) return false;
    if (r.matchingType === 0) return r.data.length > 0 && r.data.length <= MAX_FULL;
    if (r.matchingType === 1) return r.data.length === 32;
    if (r.matchingType === 2) return r.data.length === 64;
    return false;
  });
}

export interface DaneVerdict {
  ok: boolean;
  /** Which record matched ("3 1 1"), or why none did. */
  detail: string;
}

function selected(cert: X509Certificate, selector: number): Buffer {
  // Selector 0: the whole DER certificate; 1: its SubjectPublicKeyInfo (RFC 6698 §2.1.2).
  return selector === 0 ? cert.raw : (cert.publicKey.export({ type: "spki", format: "der" }) as Buffer);
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  const sel = selected(cert, r.selector);
  const got = r.matchingType === 0 ? sel : createHash(r.matchingType === 1 ? "sha256" : "sha512").update(sel).digest();
  return got.length === r.data.length && Buffer.compare(got, Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength)) === 0;
}

function parse(chain: readonly Uint8Array[]): X509Certificate[] | null {
  try {
    return chain.map((der) => new X509Certificate(Buffer.from(der.buffer, der.byteOffset, der.byteLength)));
  } catch {
    return null;
  }
}

/**
 * Whether the server's chain (DER, leaf first, as sent in the handshake) matches one of `records` (already
 * filtered by usableTlsa). `names`: the reference identifiers for DANE-TA (the MX host name, RFC 7672 §3.2.2).
 */
export function daneVerify(chain: readonly Uint8Array[], records: readonly TlsaRecord[], names: readonly string[]): DaneVerdict {
  const certs = parse(chain);
  if (certs === null || certs.length === 0) return { ok: false, detail: "the server presented no readable certificate" };
  const leaf = certs[0];
  const now = Date.now();
  for (const r of records) {
    const label = `${r.usage} ${r.selector} ${r.matchingType}`;
    if (r.usage === DANE_EE) {
      if (matches(leaf, r)) return { ok: true, detail: `DANE-EE ${label}` };
      continue;
    }
    // DANE-TA: the trust anchor is a certificate of the presented chain (RFC 7671 §5.2.2: servers must send it).
    for (let ta = 0; ta < certs.length; ta++) {
      if (!matches(certs[ta], r)) continue;
      if (!chainUpTo(certs, ta, now)) continue;
      if (!names.some((n) => leaf.checkHost(n, { subject: "default", wildcards: true, partialWildcards: false }) !== undefined)) {
        return { ok: false, detail: `DANE-TA ${label} matched, but the certificate is not for ${names.join(" or ")}` };
      }
      return { ok: true, detail: `DANE-TA ${label}` };
    }
  }
  return { ok: false, detail: "no TLSA record matches the server's certificate" };
}

/** Each certificate below `ta` is issued and signed by the next one and within its validity (RFC 5280 §6.1). */
function chainUpTo(certs: X509Certificate[], ta: number, now: number): boolean {
  for (let i = 0; i < ta; i++) {
    const c = certs[i];
    const issuer = certs[i + 1];
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) return false;
    if (Date.parse(c.validFrom) > now || Date.parse(c.validTo) < now) return false;
  }
  return true;
}
