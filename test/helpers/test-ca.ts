/**
 * A throw-away CA and leaf certificates made with openssl (Debian package openssl) for TLS-policy tests: DANE
 * (TLSA data computed from the leaf or the CA), MTA-STS (the policy host and MX names signed by a CA given to
 * ringmta through relay.tls_ca). P-256 keys; leaves carry CA:FALSE (Deno's client requires it) and DNS or IP SANs.
 */
import { spawnSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isIP } from "node:net";
import { join } from "node:path";
import { peerPath } from "./peers.ts";

export interface Leaf {
  /** PEM. */
  cert: string;
  key: string;
  /** The leaf then the CA, PEM (what a server should send). */
  chain: string;
  certFile: string;
  keyFile: string;
  chainFile: string;
}

export interface TestCa {
  dir: string;
  /** PEM of the CA certificate (relay.tls_ca). */
  cert: string;
  certFile: string;
  leaf(names: string[], label?: string): Leaf;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  const bin = peerPath("openssl");
  if (bin === null) throw new Error("openssl not installed");
  const r = spawnSync(bin, args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
}

export function makeTestCa(name = "ringmta test CA"): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "ringmta-ca-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  let n = 0;
  return {
    dir,
    cert: readFileSync(join(dir, "ca.pem"), "utf8"),
    certFile: join(dir, "ca.pem"),
    leaf(names, label = `leaf${n++}`) {
      openssl(["req", ...ec, "-keyout", `${label}.key`, "-out", `${label}.csr`, "-subj", `/CN=${names[0]}`], dir);
      writeFileSync(join(dir, `${label}.ext`), `subjectAltName=${names.map((x) => (isIP(x) ? `IP:${x}` : `DNS:${x}`)).join(",")}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      openssl(["x509", "-req", "-in", `${label}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${label}.pem`,
        "-days", "2", "-extfile", `${label}.ext`], dir);
      const cert = readFileSync(join(dir, `${label}.pem`), "utf8");
      const chain = cert + readFileSync(join(dir, "ca.pem"), "utf8");
      writeFileSync(join(dir, `${label}.chain.pem`), chain);
      return {
        cert,
        key: readFileSync(join(dir, `${label}.key`), "utf8"),
        chain,
        certFile: join(dir, `${label}.pem`),
        keyFile: join(dir, `${label}.key`),
        chainFile: join(dir, `${label}.chain.pem`),
      };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** DER of a PEM certificate. */
export function der(pem: string): Uint8Array {
  return new Uint8Array(new X509Certificate(pem).raw);
}

/** TLSA association data (RFC 6698 §2.1): selector 0 cert / 1 SPKI, matching 0 full / 1 SHA-256 / 2 SHA-512; hex. */
export function tlsaData(pem: string, selector: 0 | 1, matching: 0 | 1 | 2): string {
  const x = new X509Certificate(pem);
  const sel = selector === 0 ? x.raw : (x.publicKey.export({ type: "spki", format: "der" }) as Buffer);
  const out = matching === 0 ? sel : createHash(matching === 1 ? "sha256" : "sha512").update(sel).digest();
  return Buffer.from(out).toString("hex");
}
