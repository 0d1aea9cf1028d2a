/**
 * DKIM verifiers for the signing tests, each fed the records as `dkim keygen` printed them (zone-file lines whose
 * quoted strings are joined, as a resolver joins TXT strings): dkimpy (Debian python3-dkim, `dkim.verify` with a
 * dnsfunc), OpenDKIM (the `opendkim` filter in test mode, -t, with TestPublicKeys instead of DNS) and mailauth
 * (in-process, with a resolver function). Each returns "selector:result" per signature, in field order.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { peerPath } from "./peers.ts";

/** `<s>._domainkey.<d>. IN TXT "a" "b"` → name without the final dot, and the strings joined. */
export function parseTxtLine(line: string): { name: string; value: string } {
  const m = /^(\S+)\.\s+IN\s+TXT\s+((?:"[^"]*"\s*)+)$/.exec(line.trim());
  if (!m) throw new Error(`not a TXT line: ${line}`);
  const strings = [...m[2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!);
  for (const s of strings) if (s.length > 255) throw new Error(`a TXT string over 255 octets in: ${line}`);
  return { name: m[1]!, value: strings.join("") };
}

export type Records = ReadonlyMap<string, string>;

export function recordsOf(lines: ReadonlyArray<string>): Map<string, string> {
  return new Map(lines.map((l) => parseTxtLine(l)).map((r) => [r.name, r.value]));
}

/** The interpreter that has dkimpy: the one in dkimverify's #! line (a pyenv python3 on PATH may lack it). */
function dkimpyPython(): string {
  const bin = peerPath("dkimverify");
  if (bin === null) throw new Error("dkimverify (python3-dkim) not installed");
  const first = readFileSync(bin, "utf8").split("\n")[0]!;
  const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(first);
  if (!m) return "/usr/bin/python3";
  return m[1]!.endsWith("/env") ? m[2]! : m[1]!;
}

const DKIMPY = `
import sys, json, dkim
records = json.load(open(sys.argv[1]))
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    return records.get(n.rstrip('.'), '').encode()
for path in sys.argv[2:]:
    d = dkim.DKIM(open(path, 'rb').read())
    sigs = [v for (k, v) in d.headers if k.lower() == b'dkim-signature']
    out = []
    for i, v in enumerate(sigs):
        s = dkim.util.parse_tag_value(v.replace(b'\\r\\n', b''))[b's'].decode()
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.ValidationError:
            ok = False  # e.g. "body hash mismatch"
        out.append(s + ':' + ('pass' if ok else 'fail'))
    print(json.dumps(out))
`;

export function dkimpyVerify(message: Uint8Array, records: Records): string[] {
  return dkimpyVerifyAll([message], records)[0]!;
}

/** Many messages in one python3 process (each a list of "selector:result"). */
export function dkimpyVerifyAll(messages: ReadonlyArray<Uint8Array>, records: Records): string[][] {
  const dir = mkdtempSync(join(tmpdir(), "dkimpy-"));
  try {
    writeFileSync(join(dir, "r.json"), JSON.stringify(Object.fromEntries(records)));
    writeFileSync(join(dir, "v.py"), DKIMPY);
    const files = messages.map((m, i) => {
      const f = join(dir, `m${i}.eml`);
      writeFileSync(f, m);
      return f;
    });
    const r = spawnSync(dkimpyPython(), [join(dir, "v.py"), join(dir, "r.json"), ...files], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`dkimpy failed: ${r.stderr}`);
    return r.stdout.trim().split("\n").map((l) => JSON.parse(l) as string[]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * OpenDKIM's filter in test mode (-t FILE): it verifies every signature against TestPublicKeys (lines
 * "name value") and prints the Authentication-Results field it would add (-vvv), which is parsed here.
 */
export function opendkimVerify(message: Uint8Array, records: Records): string[] {
  const bin = peerPath("opendkim");
  if (bin === null) throw new Error("opendkim not installed");
  const dir = mkdtempSync(join(tmpdir(), "opendkim-"));
  try {
    writeFileSync(join(dir, "keys"), [...records].map(([n, v]) => `${n} ${v}\n`).join(""));
    writeFileSync(join(dir, "conf"), `Mode v\nSyslog no\nTestPublicKeys ${join(dir, "keys")}\nAlwaysAddARHeader yes\n`);
    writeFileSync(join(dir, "m.eml"), message);
    const r = spawnSync(bin, ["-x", join(dir, "conf"), "-vvv", "-t", join(dir, "m.eml")], { encoding: "utf8" });
    const text = `${r.stdout}\n${r.stderr}`;
    const ar = /hname='Authentication-Results' hvalue='([^']*)'/.exec(text);
    if (!ar) throw new Error(`opendkim printed no Authentication-Results (exit ${r.status}): ${text}`);
    // "dkim=pass (2048-bit key) header.d=… header.s=rsa1 …; dkim=fail (…; unprotected) … header.s=ed1 …"
    const value = ar[1]!;
    const starts = [...value.matchAll(/\bdkim=(\w+)/g)];
    return starts.map((m, i) => {
      const part = value.slice(m.index, starts[i + 1]?.index ?? value.length);
      return `${/header\.s=([^\s;]+)/.exec(part)?.[1] ?? "?"}:${m[1]}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const require = createRequire(import.meta.url);

export async function mailauthVerify(message: Uint8Array, records: Records, now?: Date): Promise<string[]> {
  const { dkimVerify } = require("mailauth/lib/dkim/verify.js") as {
    dkimVerify: (m: Buffer, o: object) => Promise<{ results: Array<{ status: { result: string }; selector: string }> }>;
  };
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    const v = records.get(name.replace(/\.$/, ""));
    if (type !== "TXT" || v === undefined) throw Object.assign(new Error(`no TXT for ${name}`), { code: "ENOTFOUND" });
    return [[v]];
  };
  const r = await dkimVerify(Buffer.from(message), { resolver, ...(now ? { curTime: now } : {}) });
  return r.results.map((x) => `${x.selector}:${x.status.result}`);
}
