/**
 * DKIM keys on disk (CONTRACT "Storage layout": DATA/dkim/<domain>/<selector>.key, PKCS#8 PEM, 0600), the record
 * that publishes each one (RFC 6376 §3.6.1; ed25519: RFC 8463 §4.2, the raw 32-byte key) and key generation.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DkimKeyring, type DkimAlgorithm, type DkimKey } from "./signer.ts";

/** RFC 8301 §3.2: at least 1024 bits; above 4096 a verifier may refuse the key (and signing gets slow). */
export const RSA_BITS = { min: 1024, max: 4096 } as const;

export function keyFile(dataDir: string, domain: string, selector: string): string {
  return join(dataDir, "dkim", domain, `${selector}.key`);
}

function readProblem(err: unknown): string {
  switch ((err as { code?: string }).code) {
    case "ENOENT":
      return "no such file (create it with `dkim keygen`)";
    case "EACCES":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a file";
    default:
      return `cannot be read (${(err as Error).message})`;
  }
}

/** Reads and checks one key; a sentence saying what is wrong with it otherwise. */
export function readKey(file: string, domain: string, selector: string): DkimKey | string {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    return `${file}: ${readProblem(err)}`;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch {
    return `${file}: not a private key in PEM form`;
  }
  const type = key.asymmetricKeyType;
  if (type === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < RSA_BITS.min || bits > RSA_BITS.max) {
      return `${file}: an RSA key of ${bits} bits (expected ${RSA_BITS.min} to ${RSA_BITS.max})`;
    }
    return { domain, selector, algorithm: "rsa-sha256", key, file };
  }
  if (type === "ed25519") return { domain, selector, algorithm: "ed25519-sha256", key, file };
  return `${file}: a ${type ?? "unknown"} key (expected RSA or Ed25519)`;
}

export type KeyringResult = { ok: true; keyring: DkimKeyring } | { ok: false; errors: string[] };

/**
 * Every key of [dkim.selectors] (CONTRACT: a missing or unreadable key is a config error at start and on SIGHUP),
 * each error a line `dkim.selectors.<domain>: <file>: <problem>`.
 */
export function loadKeyring(dataDir: string, selectors: Readonly<Record<string, ReadonlyArray<string>>>): KeyringResult {
  const errors: string[] = [];
  const byDomain = new Map<string, DkimKey[]>();
  for (const [domain, sels] of Object.entries(selectors)) {
    const keys: DkimKey[] = [];
    for (const s of sels) {
      const k = readKey(keyFile(dataDir, domain, s), domain, s);
      if (typeof k === "string") errors.push(`dkim.selectors.${domain}: ${k}`);
      else keys.push(k);
    }
    byDomain.set(domain, keys);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, keyring: new DkimKeyring(byDomain) };
}

/** The TXT value that publishes the public half of `key`: "v=DKIM1; k=rsa|ed25519; p=<base64>". */
export function publicRecord(key: KeyObject): string {
  const pub = createPublicKey(key);
  const der = pub.export({ format: "der", type: "spki" });
  if (pub.asymmetricKeyType === "ed25519") {
    // RFC 8463 §4.2: p= is the raw public key, the last 32 octets of its SubjectPublicKeyInfo.
    return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString("base64")}`;
  }
  return `v=DKIM1; k=rsa; p=${der.toString("base64")}`;
}

/** A TXT value as zone-file character-strings of at most 255 octets each (RFC 1035 §3.3.14). */
export function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return parts.join(" ");
}

/** One zone-file line: `<s>._domainkey.<d>. IN TXT "…" "…"` (no TTL). */
export function dkimRecordLine(domain: string, selector: string, key: KeyObject): string {
  return `${selector}._domainkey.${domain}. IN TXT ${txtStrings(publicRecord(key))}`;
}

export type KeyAlgorithm = "rsa" | "ed25519";

/**
 * Generates a key and writes it as PKCS#8 PEM, 0600, directories 0700. An existing file is never replaced (the
 * "wx" flag fails with EEXIST). Returns the key.
 */
export function generateKeyFile(file: string, algo: KeyAlgorithm, bits: number): KeyObject {
  const { privateKey } =
    algo === "rsa" ? generateKeyPairSync("rsa", { modulusLength: bits }) : generateKeyPairSync("ed25519");
  const pem = privateKey.export({ format: "pem", type: "pkcs8" });
  mkdirSync(join(file, ".."), { recursive: true, mode: 0o700 });
  writeFileSync(file, pem, { mode: 0o600, flag: "wx" });
  return privateKey;
}

export type { DkimAlgorithm };
