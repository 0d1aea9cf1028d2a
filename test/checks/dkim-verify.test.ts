/**
 * Our DKIM verifier (src/dkim/verify.ts, through MessageVerifier's fast path) against outside signers: dkimpy for
 * simple and relaxed canonicalization, l=, over-signed h= and i=; mailauth's signer for x=. dnsmasq serves the keys
 * to our Resolver. A property test holds mailauth's strict dkimVerify as the oracle: for random chunkings of
 * signed, tampered and odd messages, our results equal its results.
 */
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { dkimSign } from "mailauth/lib/dkim/sign";
import { dkimVerify } from "mailauth/lib/dkim/verify";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { MessageVerifier, type VerifiedMessage } from "../../src/checks/index.ts";
import { nodeDnsAdapter, Resolver } from "../../src/dns/index.ts";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import { havePeer, peerTest } from "../helpers/peers.ts";
import { dkimpySign, ed25519Key, keyName, rsaKey, txtRecord, type SignOptions, type TestKey } from "./dkimpy.ts";

const BASE = Buffer.from(
  [
    "From: Alice <alice@example.test>",
    "To: bob@mx.test",
    "Subject:   spaced   subject\t ",
    "Date: Wed, 03 Dec 2025 10:00:00 +0000",
    "Message-ID: <v1@example.test>",
    "",
    "Hello Bob,  ",
    "",
    "a body\twith  odd spacing.",
    "",
    "",
  ].join("\r\n"),
);

const rsa = rsaKey("example.test", "rsa1");
const ed = ed25519Key("example.test", "ed1");
/** t=s: the i= domain must be d= itself (RFC 6376 §3.6.1). */
const strictKey = { ...rsaKey("example.test", "strict"), selector: "strict" };
strictKey.record = strictKey.record.replace("k=rsa;", "k=rsa; t=s;");
/** p= empty: the key was revoked (RFC 6376 §3.6.1). */
const revoked = { ...rsaKey("example.test", "revoked") };
const REVOKED_RECORD = "v=DKIM1; k=rsa; p=";

let dns: Dnsmasq | null = null;
let resolver: Resolver;

beforeAll(async () => {
  if (!havePeer("dnsmasq")) return;
  dns = await startDnsmasq({
    zones: ["example.test"],
    txt: [...[rsa, ed, strictKey].map((k) => txtRecord(keyName(k), k.record)), `${keyName(revoked)},${REVOKED_RECORD}`],
  });
  resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000, attempts: 1 });
});
afterAll(async () => {
  await dns?.stop();
});

/** Feeds the message cut at `cuts` (or in chunks of 1–97 bytes). */
async function verify(msg: Uint8Array, cuts?: number[]): Promise<VerifiedMessage> {
  const v = new MessageVerifier({ dns: resolver, dkim: true, arc: true });
  const points = cuts ?? [];
  if (cuts === undefined) for (let i = 0, step = 1; i < msg.length; i += step, step = (step * 7 + 3) % 97 || 1) points.push(i);
  const sorted = [...new Set([0, ...points.map((p) => p % (msg.length + 1)), msg.length])].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    const lent = Uint8Array.from(msg.subarray(sorted[i - 1], sorted[i]));
    v.write(lent);
    lent.fill(0x58);
  }
  return v.end();
}

const results = (m: VerifiedMessage): string[] => m.dkim.map((d) => `${d.selector}:${d.result}`);

function sign(msg: Uint8Array, k: TestKey, o: SignOptions = {}): Buffer {
  return dkimpySign(msg, k, o);
}

describe("DKIM verification by our verifier (dkimpy and mailauth sign, dnsmasq serves the keys)", () => {
  peerTest(["dnsmasq", "dkimverify"], "simple/simple and simple/relaxed (and relaxed/simple) signatures by dkimpy pass; a changed space fails simple", async () => {
    for (const canon of ["simple/simple", "simple/relaxed", "relaxed/simple"]) {
      const signed = sign(sign(BASE, rsa, { canon }), ed, { canon });
      expect(results(await verify(signed)), canon).toEqual(["ed1:pass", "rsa1:pass"]);
    }
    const simple = sign(BASE, rsa, { canon: "simple/simple" });
    const header = Buffer.from(simple.toString("latin1").replace("Subject:   spaced", "Subject:  spaced"), "latin1");
    expect((await verify(header)).dkim[0]).toMatchObject({ result: "fail", reason: "bad signature" });
    const body = Buffer.from(simple.toString("latin1").replace("Hello Bob,  ", "Hello Bob, "), "latin1");
    expect((await verify(body)).dkim[0]).toMatchObject({ result: "fail", reason: "body hash did not verify" });
    // Relaxed body canonicalization does not see the change.
    const relaxed = sign(BASE, rsa, { canon: "relaxed/relaxed" });
    expect(results(await verify(Buffer.from(relaxed.toString("latin1").replace("Hello Bob,  ", "Hello Bob, "), "latin1")))).toEqual(["rsa1:pass"]);
  });

  peerTest(["dnsmasq", "dkimverify"], "l=: text appended after the signed length still passes; a change inside it fails", async () => {
    for (const canon of ["relaxed/relaxed", "simple/simple"]) {
      const signed = sign(BASE, rsa, { canon, length: true });
      expect(signed.toString("latin1")).toMatch(/\bl=\d+/);
      expect(results(await verify(Buffer.concat([signed, Buffer.from("appended by a list\r\n")]))), canon).toEqual(["rsa1:pass"]);
      expect(results(await verify(Buffer.from(signed.toString("latin1").replace("a body", "A body"), "latin1"))), canon).toEqual(["rsa1:fail"]);
    }
  });

  peerTest(["dnsmasq", "dkimverify"], "over-signed h= (a name listed more often than present): pass; adding the field then fails", async () => {
    const signed = sign(BASE, rsa, { headers: ["from", "from", "subject", "subject", "reply-to"] });
    expect(signed.toString("latin1")).toMatch(/h=from\s*:\s*from\s*:\s*subject\s*:\s*subject\s*:\s*reply-to/);
    expect(results(await verify(signed))).toEqual(["rsa1:pass"]);
    const added = Buffer.concat([signed, Buffer.alloc(0)]);
    const at = added.indexOf("\r\n\r\n");
    const withReplyTo = Buffer.concat([added.subarray(0, at + 2), Buffer.from("Reply-To: mallory@evil.test\r\n"), added.subarray(at + 2)]);
    expect((await verify(withReplyTo)).dkim[0]).toMatchObject({ result: "fail", reason: "bad signature" });
    const secondFrom = Buffer.concat([added.subarray(0, at + 2), Buffer.from("From: mallory@evil.test\r\n"), added.subarray(at + 2)]);
    expect((await verify(secondFrom)).dkim[0]!.result).toBe("fail");
  });

  peerTest(["dnsmasq", "dkimverify"], "i= a subdomain of d= passes; a key with t=s refuses it (neutral) and passes i= equal to d=", async () => {
    expect(results(await verify(sign(BASE, rsa, { identity: "alice@mail.example.test" })))).toEqual(["rsa1:pass"]);
    const sub = await verify(sign(BASE, strictKey, { identity: "alice@mail.example.test" }));
    expect(sub.dkim[0]).toMatchObject({ result: "neutral", reason: "domain mismatch" });
    expect(results(await verify(sign(BASE, strictKey, { identity: "alice@example.test" })))).toEqual(["strict:pass"]);
  });

  peerTest(["dnsmasq", "dkimverify"], "a revoked key (p= empty) → permerror; x= in the past (mailauth signs) → neutral expired", async () => {
    const r = await verify(sign(BASE, revoked));
    expect(r.dkim[0]).toMatchObject({ selector: "revoked", result: "permerror", reason: "invalid public key" });
    const past = Date.now() - 3 * 86_400_000;
    const signed = await dkimSign(BASE, {
      canonicalization: "relaxed/relaxed",
      signTime: new Date(past),
      expires: new Date(past + 86_400_000),
      signatureData: [{ signingDomain: "example.test", selector: "rsa1", privateKey: rsa.private.export({ format: "pem", type: "pkcs8" }) as string }],
    } as never);
    const m = await verify(Buffer.concat([Buffer.from(signed.signatures), BASE]));
    expect(m.dkim[0]).toMatchObject({ result: "neutral", reason: "expired" });
  });

  peerTest(["dnsmasq", "dkimverify"], "property: for random chunkings, our results equal mailauth's strict dkimVerify (the oracle)", async () => {
    const signed = sign(sign(BASE, rsa, { canon: "simple/simple", length: true }), ed);
    const text = signed.toString("latin1");
    const messages = [
      signed,
      Buffer.from(text.replace("Hello", "Jello"), "latin1"),
      Buffer.from(text.replace("To: bob", "To: rob"), "latin1"),
      Buffer.concat([signed, Buffer.from("more\r\n\r\n")]),
      sign(BASE, revoked),
      sign(BASE, strictKey, { identity: "a@mail.example.test", headers: ["from", "from", "subject"] }),
      Buffer.concat([Buffer.from("DKIM-Signature: v=1; a=rsa-sha1; d=example.test; s=rsa1; h=from; bh=AAAA; b=AAAA\r\n"), signed]),
      Buffer.concat([Buffer.from("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; d=example.test; s=rsa1; h=from; bh=AAAA; b=AAAA\r\n"), signed]),
      Buffer.concat([Buffer.from("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=nokey; h=to; bh=AAAA; b=AAAA\r\n"), signed]),
      Buffer.concat([Buffer.from("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=nokey; h=from; bh=AAAA; b=AAAA\r\n"), signed]),
    ];
    const adapter = nodeDnsAdapter(resolver);
    const oracle = await Promise.all(
      messages.map(async (m) => {
        const r = await dkimVerify(m, { resolver: adapter.resolve, strict: true, minBitLength: 1024 } as never);
        const permerror = new Set(["no key", "unknown key version", "unknown key type", "invalid public key", "inappropriate hash algorithm", "key not for email", "inappropriate key algorithm"]);
        return (r.results as Array<{ selector?: string; status: { result: string; comment?: string } }>)
          .filter((x) => x.status.result !== "none")
          .map((x) => {
            const neutral = x.status.result === "neutral" && permerror.has(x.status.comment ?? "") ? "permerror" : x.status.result;
            return `${x.selector}:${neutral}:${x.status.result === "pass" ? "" : (x.status.comment ?? "")}`;
          });
      }),
    );
    expect(oracle[0]).toEqual(["ed1:pass:", "rsa1:pass:"]);
    await fc.assert(
      fc.asyncProperty(fc.nat(messages.length - 1), fc.array(fc.nat(), { maxLength: 12 }), async (i, cuts) => {
        const m = await verify(messages[i]!, cuts);
        const ours = m.dkim.map((d) => `${d.selector}:${d.result}:${d.reason ?? ""}`);
        // mailauth says "key too small" without words for a policy result; ours names the RFC.
        expect(ours.map((o) => o.replace(/:key too small.*$/, ":"))).toEqual(oracle[i]);
      }),
      { numRuns: 60 },
    );
  });
});
