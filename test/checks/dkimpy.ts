/**
 * dkimpy (Debian python3-dkim) as the outside signer and ARC validator of the checks tests, and test keys with the
 * TXT records that publish them, split into strings for dnsmasq's --txt-record (several strings of one record).
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PY = "/usr/bin/python3";

export interface TestKey {
  selector: string;
  domain: string;
  algorithm: "rsa-sha256" | "ed25519-sha256";
  private: KeyObject;
  /** What dkimpy takes: PKCS#1 PEM (RSA) or the base64 32-byte seed (ed25519, RFC 8463 §4). */
  dkimpyKey: string;
  /** The record's value, "v=DKIM1; k=...; p=...". */
  record: string;
}

export function rsaKey(domain: string, selector: string, bits = 2048): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  const p = publicKey.export({ type: "spki", format: "der" }).toString("base64");
  return {
    selector,
    domain,
    algorithm: "rsa-sha256",
    private: privateKey,
    dkimpyKey: privateKey.export({ type: "pkcs1", format: "pem" }) as string,
    record: `v=DKIM1; k=rsa; p=${p}`,
  };
}

export function ed25519Key(domain: string, selector: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = privateKey.export({ type: "pkcs8", format: "der" }).subarray(-32).toString("base64");
  const raw = publicKey.export({ type: "spki", format: "der" }).subarray(-32).toString("base64");
  return { selector, domain, algorithm: "ed25519-sha256", private: privateKey, dkimpyKey: seed, record: `v=DKIM1; k=ed25519; p=${raw}` };
}

/** dnsmasq --txt-record value: the record's name and its value cut into strings of at most `size` octets. */
export function txtRecord(name: string, value: string, size = 200): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += size) parts.push(value.slice(i, i + size));
  return [name, ...parts].join(",");
}

export function keyName(k: TestKey): string {
  return `${k.selector}._domainkey.${k.domain}`;
}

const SCRIPT = `
import sys, json, dkim
job = json.load(open(sys.argv[1]))
msg = open(sys.argv[2], 'rb').read()
records = job.get('records', {})
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    return records.get(n.rstrip('.'), '').encode()
op = job['op']
if op == 'sign':
    canon = job.get('canon', 'relaxed/relaxed').split('/')
    identity = job.get('identity')
    sig = dkim.sign(msg, job['selector'].encode(), job['domain'].encode(), job['key'].encode(),
                    identity=identity.encode() if identity else None,
                    signature_algorithm=job['algorithm'].encode(),
                    include_headers=[h.encode() for h in job['headers']],
                    canonicalize=(canon[0].encode(), canon[1].encode()),
                    length=job.get('length', False))
    sys.stdout.buffer.write(sig + msg)
elif op == 'arcsign':
    sigs = dkim.arc_sign(msg, job['selector'].encode(), job['domain'].encode(), job['key'].encode(),
                         job['srv_id'].encode(), include_headers=[h.encode() for h in job['headers']])
    sys.stdout.buffer.write(b''.join(sigs) + msg)
elif op == 'arcverify':
    cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    sys.stdout.write(json.dumps({'cv': cv.decode(), 'reason': reason}))
`;

function run(job: object, message: Uint8Array): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "dkimpy-"));
  try {
    writeFileSync(join(dir, "s.py"), SCRIPT);
    writeFileSync(join(dir, "job.json"), JSON.stringify(job));
    writeFileSync(join(dir, "m.eml"), message);
    const r = spawnSync(PY, [join(dir, "s.py"), join(dir, "job.json"), join(dir, "m.eml")]);
    if (r.status !== 0) throw new Error(`dkimpy failed: ${r.stderr.toString()}`);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const HEADERS = ["from", "to", "subject", "date", "message-id"];

export interface SignOptions {
  /** c=, "relaxed/relaxed" by default. */
  canon?: string;
  /** h=: the fields to sign, a name listed more often than present over-signs it. */
  headers?: string[];
  /** l=: dkimpy writes the body length it signed. */
  length?: boolean;
  /** i=. */
  identity?: string;
}

/** The message with a DKIM-Signature made by dkimpy (relaxed/relaxed unless told) on top. */
export function dkimpySign(message: Uint8Array, k: TestKey, o: SignOptions = {}): Buffer {
  return run(
    { op: "sign", selector: k.selector, domain: k.domain, key: k.dkimpyKey, algorithm: k.algorithm, headers: o.headers ?? HEADERS, canon: o.canon, length: o.length ?? false, identity: o.identity },
    message,
  );
}

/** The message with dkimpy's next ARC set on top (it needs an Authentication-Results field of `srvId`). */
export function dkimpyArcSign(message: Uint8Array, k: TestKey, srvId: string): Buffer {
  return run({ op: "arcsign", selector: k.selector, domain: k.domain, key: k.dkimpyKey, srv_id: srvId, headers: HEADERS }, message);
}

/** dkimpy's chain validation: "pass", "fail" or "none", with its reason. */
export function dkimpyArcVerify(message: Uint8Array, records: ReadonlyArray<TestKey>): { cv: string; reason: string } {
  const map = Object.fromEntries(records.map((k) => [keyName(k), k.record]));
  return JSON.parse(run({ op: "arcverify", records: map }, message).toString()) as { cv: string; reason: string };
}

export function haveDkimpy(): boolean {
  return spawnSync(PY, ["-c", "import dkim, authres"]).status === 0;
}

export function readMessage(path: string): Buffer {
  return readFileSync(path);
}
