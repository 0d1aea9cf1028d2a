/**
 * Self-signed certificates with @peculiar/x509 (`certs generate`, and at first start when the configured files
 * are absent). ECDSA P-256 by default, RSA-2048 on request; CA:FALSE (Deno's client refuses a self-signed leaf
 * that claims to be a CA); serverAuth EKU; SANs for the host name, plus localhost/127.0.0.1/::1 when asked.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync, chmodSync } from "node:fs";
import { dirname } from "node:path";

export interface CertOptions {
  host: string;
  rsa?: boolean;
  /** Add localhost, 127.0.0.1 and ::1 to the SANs. */
  local?: boolean;
  days?: number;
}

export interface PemPair {
  cert: string;
  key: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export async function generateCertificate(o: CertOptions): Promise<PemPair> {
  const crypto = webcrypto as unknown as Crypto;
  x509.cryptoProvider.set(crypto);
  const alg = o.rsa
    ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 }
    : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [{ type: "dns", value: o.host }];
  if (o.local) {
    if (o.host !== "localhost") names.push({ type: "dns", value: "localhost" });
    names.push({ type: "ip", value: "127.0.0.1" }, { type: "ip", value: "::1" });
  }
  const now = new Date();
  const notBefore = new Date(now.getTime() - 60_000);
  const serial = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  serial[0] = serial[0]! & 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString("hex"),
    name: `CN=${o.host}`,
    // A minute of slack for clocks slightly behind; the lifetime counts from notBefore (825 days at most,
    // the CA/Browser Forum ceiling that testssl checks).
    notBefore,
    notAfter: new Date(notBefore.getTime() + (o.days ?? 825) * 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        o.rsa
          ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
          : x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { cert: cert.toString("pem") + "\n", key: pem("PRIVATE KEY", pkcs8) };
}

/** Write a pair: the key 0600 (it is secret), the certificate 0644. */
export function writePemPair(pair: PemPair, certPath: string, keyPath: string): void {
  for (const p of [certPath, keyPath]) mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  writeFileSync(keyPath, pair.key, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(certPath, pair.cert, { mode: 0o644 });
}

/** First start: generate a certificate when neither file exists. Returns true when it generated one. */
export async function ensureCertificate(host: string, certPath: string, keyPath: string): Promise<boolean> {
  if (existsSync(certPath) || existsSync(keyPath)) return false;
  writePemPair(await generateCertificate({ host, local: true }), certPath, keyPath);
  return true;
}
