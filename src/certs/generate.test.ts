import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { ensureCertificate, generateCertificate, writePemPair } from "./generate.ts";

const dir = mkdtempSync(join(tmpdir(), "ringmta-certs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The key signs and the certificate's public key verifies: they are a pair. */
function matches(certPem: string, keyPem: string): boolean {
  const data = Buffer.from("ringmta");
  const sig = sign("sha256", data, createPrivateKey(keyPem));
  return verify("sha256", data, createPublicKey(new X509Certificate(certPem).publicKey.export({ format: "pem", type: "spki" })), sig);
}

describe("generateCertificate", () => {
  test("ECDSA P-256 by default: CN and SAN = host, CA:FALSE, self-signed, valid now, key matches", async () => {
    const pair = await generateCertificate({ host: "mx.example.test" });
    const x = new X509Certificate(pair.cert);
    expect(x.subject).toBe("CN=mx.example.test");
    expect(x.subjectAltName).toBe("DNS:mx.example.test");
    expect(x.ca).toBe(false);
    expect(x.publicKey.asymmetricKeyType).toBe("ec");
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkHost("mx.example.test")).toBe("mx.example.test");
    const now = Date.now();
    expect(new Date(x.validFrom).getTime()).toBeLessThanOrEqual(now);
    expect(new Date(x.validTo).getTime()).toBeGreaterThan(now + 365 * 86_400_000);
    expect(pair.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(matches(pair.cert, pair.key)).toBe(true);
  });

  test("rsa: RSA-2048", async () => {
    const pair = await generateCertificate({ host: "mx.example.test", rsa: true });
    const x = new X509Certificate(pair.cert);
    expect(x.publicKey.asymmetricKeyType).toBe("rsa");
    expect(x.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x.ca).toBe(false);
    expect(matches(pair.cert, pair.key)).toBe(true);
  });

  test("local: SANs add localhost, 127.0.0.1 and ::1", async () => {
    const x = new X509Certificate((await generateCertificate({ host: "mx.example.test", local: true })).cert);
    const san = x.subjectAltName ?? "";
    expect(san).toContain("DNS:mx.example.test");
    expect(san).toContain("DNS:localhost");
    expect(san).toContain("IP Address:127.0.0.1");
    expect(x.checkIP("127.0.0.1")).toBe("127.0.0.1");
  });

  test("each certificate gets its own serial number and key", async () => {
    const [a, b] = await Promise.all([generateCertificate({ host: "h.test" }), generateCertificate({ host: "h.test" })]);
    expect(new X509Certificate(a.cert).serialNumber).not.toBe(new X509Certificate(b.cert).serialNumber);
    expect(a.key).not.toBe(b.key);
  });
});

describe("writing", () => {
  test("writePemPair: key 0600, certificate 0644, missing directories created", async () => {
    const pair = await generateCertificate({ host: "w.test" });
    const cert = join(dir, "new", "sub", "c.crt");
    const key = join(dir, "new", "sub", "k.key");
    writePemPair(pair, cert, key);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(statSync(cert).mode & 0o777).toBe(0o644);
    expect(readFileSync(cert, "utf8")).toBe(pair.cert);
  });

  test("ensureCertificate generates only when neither file exists", async () => {
    const cert = join(dir, "e", "server.crt");
    const key = join(dir, "e", "server.key");
    expect(await ensureCertificate("first.test", cert, key)).toBe(true);
    expect(new X509Certificate(readFileSync(cert)).subject).toBe("CN=first.test");
    const before = readFileSync(cert, "utf8");
    expect(await ensureCertificate("second.test", cert, key)).toBe(false);
    expect(readFileSync(cert, "utf8")).toBe(before);

    const onlyKey = join(dir, "k-only");
    writeFileSync(join(dir, "k-only.key"), "x");
    expect(await ensureCertificate("x.test", onlyKey + ".crt", onlyKey + ".key")).toBe(false);
    expect(existsSync(onlyKey + ".crt")).toBe(false);
  });
});
