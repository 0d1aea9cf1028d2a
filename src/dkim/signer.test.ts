/**
 * DKIM signing, checked against independent code: mailauth's relaxed body canonicalization (on random bodies and
 * random chunkings) and mailauth's verifier (in-process, through a resolver that serves our publicRecord). The
 * outside verifiers (dkimpy, OpenDKIM) are in test/e2e/dkim-sign.test.ts.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  DkimKeyring,
  DkimSigning,
  fromDomain,
  MAX_HEADER_FIELDS,
  publicRecord,
  relaxedHeader,
  RelaxedBodyHash,
  signMessage,
  splitFields,
  txtStrings,
  type DkimKey,
} from "./index.ts";

const require = createRequire(import.meta.url);
const { dkimBody } = require("mailauth/lib/dkim/body/index.js") as {
  dkimBody: (c: string, algo: string, max: false) => { update(b: Buffer): void; digest(enc: "base64"): string };
};
const { dkimVerify } = require("mailauth/lib/dkim/verify.js") as {
  dkimVerify: (m: Buffer, o: object) => Promise<{ results: Array<{ status: { result: string; comment?: string }; signingDomain: string; selector: string }> }>;
};

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
const ed = generateKeyPairSync("ed25519").privateKey;
const KEYS: DkimKey[] = [
  { domain: "example.test", selector: "rsa1", algorithm: "rsa-sha256", key: rsa, file: "rsa1.key" },
  { domain: "example.test", selector: "ed1", algorithm: "ed25519-sha256", key: ed, file: "ed1.key" },
];
const ring = new DkimKeyring(new Map([["example.test", KEYS]]));
const NOW = Date.UTC(2026, 0, 1);

function mailauthBodyHash(body: Uint8Array): string {
  const h = dkimBody("relaxed", "sha256", false);
  h.update(Buffer.from(body));
  return h.digest("base64");
}

function oursBodyHash(chunks: Uint8Array[]): string {
  const h = new RelaxedBodyHash();
  for (const c of chunks) h.update(c);
  return h.digest();
}

/** mailauth's verifier with a resolver that answers our records (name → TXT value). */
async function mailauthVerify(msg: string | Buffer): Promise<string[]> {
  const records = new Map(KEYS.map((k) => [`${k.selector}._domainkey.${k.domain}`, publicRecord(k.key)]));
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    const v = records.get(name);
    if (type !== "TXT" || v === undefined) throw Object.assign(new Error("no record"), { code: "ENOTFOUND" });
    return [[v]];
  };
  const r = await dkimVerify(Buffer.isBuffer(msg) ? msg : Buffer.from(msg, "latin1"), { resolver, curTime: new Date(NOW) });
  return r.results.map((x) => `${x.selector}:${x.status.result}`);
}

const MESSAGE =
  "From: \"Alice, A.\" (the author) <alice@Sub.Example.TEST>\r\n" +
  "To: bob@remote.test\r\n" +
  "Subject:  hello\t there \r\n folded\r\n" +
  "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n" +
  "Message-ID: <x@example.test>\r\n" +
  "X-Unsigned: yes\r\n" +
  "\r\n" +
  "body  line \t\r\n\r\nsecond\r\n\r\n\r\n";

describe("relaxed body canonicalization (RFC 6376 §3.4.4)", () => {
  test("the RFC's example and the edge cases", () => {
    const sha = (s: string): string => createHash("sha256").update(s, "latin1").digest("base64");
    const enc = (s: string): Uint8Array[] => [Buffer.from(s, "latin1")];
    // §3.4.5: " C \r\nD \t E\r\n\r\n\r\n" → " C\r\nD E\r\n".
    expect(oursBodyHash(enc(" C \r\nD \t E\r\n\r\n\r\n"))).toBe(sha(" C\r\nD E\r\n"));
    expect(oursBodyHash([])).toBe(sha("")); // an empty body is empty (relaxed)
    expect(oursBodyHash(enc("\r\n\r\n"))).toBe(sha(""));
    expect(oursBodyHash(enc("no line end"))).toBe(sha("no line end\r\n"));
    expect(oursBodyHash(enc("a\rb \r\n"))).toBe(sha("a\rb\r\n")); // a lone CR is content
  });

  test("agrees with mailauth's implementation on random bodies, however they are chunked", () => {
    const byte = fc.constantFrom(...[13, 10, 32, 9, 65, 66, 0xc3, 0xa9, 46]);
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 300 }), fc.array(fc.nat(300), { maxLength: 6 }), (bytes, cuts) => {
        const body = Uint8Array.from(bytes);
        const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let prev = 0;
        for (const p of [...points, body.length]) {
          chunks.push(body.subarray(prev, p));
          prev = p;
        }
        expect(oursBodyHash(chunks)).toBe(mailauthBodyHash(body));
      }),
      { numRuns: 500 },
    );
  });
});

describe("relaxed header canonicalization (RFC 6376 §3.4.2)", () => {
  test("the RFC's example", () => {
    expect(relaxedHeader("A: X")).toBe("a:X");
    expect(relaxedHeader("B : Y\t\r\n\tZ  ")).toBe("b:Y Z");
  });
});

describe("the From domain", () => {
  const f = (v: string): string | null => fromDomain(splitFields(`From: ${v}\r\n\r\n`));
  test("display names, comments and quoted strings do not confuse it", () => {
    expect(f('"a@evil.test" <me@Example.Test>')).toBe("example.test");
    expect(f("me@example.test (comment@evil.test)")).toBe("example.test");
    expect(f("Group: a@x.example.test, b@x.example.test;")).toBe("x.example.test");
    expect(f("a@one.test, b@two.test")).toBeNull();
    expect(f("no address")).toBeNull();
    expect(fromDomain(splitFields("From: a@x.test\r\nFrom: b@x.test\r\n\r\n"))).toBeNull();
    // A U-label domain (SMTPUTF8) signs as its A-label; the header is bytes, read as latin1 like any field.
    const idn = Buffer.from("From: a@bücher.example\r\n\r\n", "utf8").toString("latin1");
    expect(fromDomain(splitFields(idn))).toBe("xn--bcher-kva.example");
  });
  test("the nearest parent with selectors signs", () => {
    expect(ring.forDomain("a.b.example.test").map((k) => k.selector)).toEqual(["rsa1", "ed1"]);
    expect(ring.forDomain("example.test.other")).toEqual([]);
    expect(ring.forDomain("notexample.test")).toEqual([]);
  });
});

describe("signatures", () => {
  test("one field per selector, folded to 78 octets, relaxed/relaxed, From over-signed, no l=, no i=; mailauth says pass", async () => {
    const r = signMessage(Buffer.from(MESSAGE, "latin1"), ring, NOW);
    expect(r.kind).toBe("signed");
    if (r.kind !== "signed") return;
    expect(r.domain).toBe("example.test");
    const fields = splitFields(r.fields + "\r\n");
    expect(fields.map((x) => x.name)).toEqual(["dkim-signature", "dkim-signature"]);
    for (const line of r.fields.split("\r\n")) expect(line.length).toBeLessThanOrEqual(78);
    const canon = fields.map((x) => relaxedHeader(x.raw));
    expect(canon[0]).toMatch(/ a=rsa-sha256; c=relaxed\/relaxed; d=example\.test; s=rsa1; t=1767225600; h=from:from:subject:date:message-id:to; bh=/);
    expect(canon[1]).toMatch(/ a=ed25519-sha256; .* s=ed1; /);
    for (const c of canon) expect(c).not.toMatch(/[; ](l|i)=/);
    expect(await mailauthVerify(r.fields + MESSAGE)).toEqual(["rsa1:pass", "ed1:pass"]);
  });

  test("a changed body byte, a changed signed field, or an added From fails", async () => {
    const r = signMessage(Buffer.from(MESSAGE, "latin1"), ring, NOW);
    if (r.kind !== "signed") throw new Error(r.kind);
    const signed = r.fields + MESSAGE;
    const bodyChanged = await mailauthVerify(signed.replace("second", "Second"));
    expect(bodyChanged.every((x) => !x.endsWith(":pass"))).toBe(true);
    const subjectChanged = await mailauthVerify(signed.replace("folded", "f0lded"));
    expect(subjectChanged.every((x) => !x.endsWith(":pass"))).toBe(true);
    const fromAdded = await mailauthVerify(signed.replace("To: bob", "From: mallory@example.test\r\nTo: bob"));
    expect(fromAdded.every((x) => !x.endsWith(":pass"))).toBe(true);
    // Unsigned fields may change: X-Unsigned is not in h=.
    expect(await mailauthVerify(signed.replace("X-Unsigned: yes", "X-Unsigned: no"))).toEqual(["rsa1:pass", "ed1:pass"]);
  });

  test("streaming in any chunking gives the same signature as the whole message", () => {
    const whole = signMessage(Buffer.from(MESSAGE, "latin1"), ring, NOW);
    const bytes = Buffer.from(MESSAGE, "latin1");
    for (let size = 1; size < 40; size += 3) {
      const s = new DkimSigning();
      for (let i = 0; i < bytes.length; i += size) s.write(bytes.subarray(i, i + size));
      const r = s.end(ring, NOW);
      // RSA PKCS#1 v1.5 and Ed25519 are deterministic: equal inputs, equal fields.
      expect(r).toEqual(whole);
    }
  });

  test("no From, two From fields, a domain without selectors, no end of the header section: not signed", () => {
    const sign = (m: string) => signMessage(Buffer.from(m, "latin1"), ring, NOW);
    expect(sign("To: a@b.test\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "no-single-from" });
    expect(sign("From: a@example.test\r\nFrom: b@example.test\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "no-single-from" });
    expect(sign("From: a@other.test\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "no-selectors" });
    // No empty line ends the header section (legal without a body, but verifiers disagree on it): not signed.
    expect(sign("From: a@example.test\r\nSubject: x\r\n")).toEqual({ kind: "unsigned", reason: "no-header-end" });
    // A header line that is no field (dkimpy refuses such a message): not signed.
    expect(sign("From: a@example.test\r\nnot a field\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "malformed-header" });
    expect(sign(" folded at the top\r\nFrom: a@example.test\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "malformed-header" });
    expect(sign("From: a@example.test\r\nSubject : obsolete\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "malformed-header" });
    // A NUL octet, in the body or a field (OpenDKIM fails what dkimpy passes): not signed.
    expect(sign("From: a@example.test\r\n\r\nbody \0 nul\r\n")).toEqual({ kind: "unsigned", reason: "nul-octet" });
    expect(sign("From: a@example.test\r\nSubject: a\0b\r\n\r\nx\r\n")).toEqual({ kind: "unsigned", reason: "nul-octet" });
  });

  test("8-bit and UTF-8 header and body content verifies", async () => {
    const m = Buffer.from("From: Jörg <jörg@example.test>\r\nSubject: Grüße 😀\r\nTo: bob@remote.test\r\n\r\nÄrger  über\tnichts\r\n", "utf8");
    const r = signMessage(m, ring, NOW);
    if (r.kind !== "signed") throw new Error(r.kind);
    expect(await mailauthVerify(Buffer.concat([Buffer.from(r.fields, "latin1"), m]))).toEqual(["rsa1:pass", "ed1:pass"]);
  });
});

describe("bounds", () => {
  test(`more than ${MAX_HEADER_FIELDS} header fields or a header section over 1 MiB: unsigned, in linear time`, () => {
    const many = "From: a@example.test\r\n" + "X-A: b\r\n".repeat(MAX_HEADER_FIELDS) + "\r\nbody\r\n";
    const t0 = performance.now();
    expect(signMessage(Buffer.from(many), ring, NOW)).toEqual({ kind: "unsigned", reason: "header-too-large" });
    const huge = "From: a@example.test\r\nX-Long: " + "x".repeat(2 * 1024 * 1024) + "\r\n\r\nbody\r\n";
    const s = new DkimSigning();
    const bytes = Buffer.from(huge);
    for (let i = 0; i < bytes.length; i += 65536) s.write(bytes.subarray(i, i + 65536));
    expect(s.end(ring, NOW)).toEqual({ kind: "unsigned", reason: "header-too-large" });
    expect(performance.now() - t0).toBeLessThan(2000);
    // Just under the field limit still signs.
    const under = "From: a@example.test\r\n" + "X-A: b\r\n".repeat(MAX_HEADER_FIELDS - 1) + "\r\nbody\r\n";
    expect(signMessage(Buffer.from(under), ring, NOW).kind).toBe("signed");
  });
});

describe("records", () => {
  test("p= is the SPKI for RSA and the raw 32-byte key for Ed25519; strings of at most 255 octets", () => {
    expect(publicRecord(ed)).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    const rec = publicRecord(rsa);
    expect(rec).toMatch(/^v=DKIM1; k=rsa; p=MIIBIjAN/);
    const strings = txtStrings(rec);
    const parts = [...strings.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
    expect(parts.join("")).toBe(rec);
    expect(parts.every((p) => p.length <= 255)).toBe(true);
    expect(parts.length).toBe(2);
  });
});


describe("arbitrary input", () => {
  test("any bytes in any chunking: end() answers signed or unsigned, never throws, and a signed result verifies", async () => {
    // Line ends are CRLF only, as the session lets through (a bare CR or LF is refused with 521).
    const alphabet = [..."From: a@example.test\t :;<>\"()@,xX"].map((c) => c.charCodeAt(0)).concat([0, 0xc3, 0xa9, 0xff, -1]);
    const samples: Uint8Array[] = [];
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...alphabet), { maxLength: 400 }),
        fc.array(fc.nat(400), { maxLength: 5 }),
        fc.boolean(),
        (symbols, cuts, withFrom) => {
          const bytes = symbols.flatMap((b) => (b === -1 ? [13, 10] : [b]));
          const body = Uint8Array.from(withFrom ? [...Buffer.from("From: a@example.test\r\n"), ...bytes] : bytes);
          const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
          const s = new DkimSigning();
          let prev = 0;
          for (const p of [...points, body.length]) {
            s.write(body.subarray(prev, p));
            prev = p;
          }
          const r = s.end(ring, NOW);
          expect(["signed", "unsigned"]).toContain(r.kind);
          if (r.kind === "signed" && samples.length < 20) samples.push(Buffer.concat([Buffer.from(r.fields, "latin1"), body]));
        },
      ),
      // One well-formed message always among the runs (the empty line, a body line): random symbols alone may
      // leave every run unsigned, and then nothing below would be checked.
      { numRuns: 300, examples: [[[-1, 120, -1], [7], true]] },
    );
    // A sample of the signed ones, checked by mailauth: messages that are well-formed enough for it to parse the
    // same header section must pass.
    expect(samples.length).toBeGreaterThan(0);
    for (const m of samples) {
      const r = await mailauthVerify(Buffer.from(m));
      if (r.length === 2) expect(r).toEqual(["rsa1:pass", "ed1:pass"]);
    }
  });
});
