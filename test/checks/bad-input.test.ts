/**
 * Bad input to MessageVerifier, each answered with a result within a generous bound (5 s; a hang or a crash is
 * what this catches, not a speed claim): malformed DKIM-Signature fields, absurd keys, a 64 KB key answer over
 * TCP, 10,000 header fields, 10,000 signatures, an oversized header section. Keys come from a DNS stub (UDP and
 * TCP) so the 64 KB answer can be crafted exactly.
 */
import { Buffer } from "node:buffer";
import { createPublicKey, randomBytes } from "node:crypto";
import * as packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Resolver } from "../../src/dns/index.ts";
import { authenticationResults, MAX_SIGNATURES, MessageVerifier, type VerifiedMessage } from "../../src/checks/index.ts";
import { reply, startDnsStub, type DnsStub } from "../helpers/dns-stub.ts";
import { peerTest } from "../helpers/peers.ts";
import { dkimpySign, rsaKey } from "./dkimpy.ts";

const rsa = rsaKey("example.test", "rsa1");

/** A 16384-bit RSA public key (a random odd modulus: only its size matters, nothing verifies with it). */
function hugeKeyRecord(): string {
  const n = randomBytes(2048);
  n[0]! |= 0x80;
  n[2047]! |= 1;
  const key = createPublicKey({ key: { kty: "RSA", n: n.toString("base64url"), e: "AQAB" }, format: "jwk" });
  return `v=DKIM1; k=rsa; p=${key.export({ type: "spki", format: "der" }).toString("base64")}`;
}

const RECORDS = new Map<string, string>([
  ["rsa1._domainkey.example.test", rsa.record],
  ["weak._domainkey.example.test", rsaKey("example.test", "weak", 512).record],
  ["huge._domainkey.example.test", hugeKeyRecord()],
  ["garbage._domainkey.example.test", `v=DKIM1; k=rsa; p=${Buffer.from("not a key at all, just bytes ".repeat(20)).toString("base64")}`],
  ["big._domainkey.example.test", `v=DKIM1; k=rsa; p=${"A".repeat(63_000)}`],
]);

function answer(udp: boolean) {
  return (q: packet.DecodedPacket): Buffer[] => {
    const question = q.questions![0]!;
    const txt = question.type === "TXT" ? RECORDS.get(question.name.toLowerCase()) : undefined;
    if (txt === undefined) return [reply(q, { rcode: 3 })];
    const strings: Buffer[] = [];
    for (let i = 0; i < txt.length; i += 250) strings.push(Buffer.from(txt.slice(i, i + 250)));
    // Over UDP a large answer is truncated (TC), so the resolver asks again over TCP (RFC 7766).
    if (udp && txt.length > 1000) return [reply(q, { tc: true })];
    return [reply(q, { answers: [{ type: "TXT", name: question.name, ttl: 300, data: strings }] })];
  };
}

let stub: DnsStub;
let resolver: Resolver;

beforeAll(async () => {
  stub = await startDnsStub(answer(true), "127.0.0.1", answer(false));
  resolver = new Resolver({ servers: [stub.server], timeoutMs: 1000, attempts: 1 });
});
afterAll(async () => {
  await stub.stop();
});

const BASE = Buffer.from(
  "From: alice@example.test\r\nTo: bob@mx.test\r\nSubject: bad input\r\nDate: Wed, 03 Dec 2025 10:00:00 +0000\r\nMessage-ID: <b@example.test>\r\n\r\nbody line\r\n",
);

async function timed(msg: Uint8Array, chunk = 65_536): Promise<{ m: VerifiedMessage; ms: number }> {
  const t0 = performance.now();
  const v = new MessageVerifier({ dns: resolver, dkim: true, arc: true });
  for (let i = 0; i < msg.length; i += chunk) v.write(msg.subarray(i, i + chunk));
  const m = await v.end();
  const ms = performance.now() - t0;
  expect(ms).toBeLessThan(5000);
  return { m, ms };
}

function sig(tags: string): Buffer {
  return Buffer.from(`DKIM-Signature: ${tags}\r\n`);
}

describe("MessageVerifier: bad input gets a result within bounded time", () => {
  const BH = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="; // sha256 of an empty body, not this one
  const B = Buffer.from("x".repeat(256)).toString("base64");
  const malformed: Array<[string, string]> = [
    ["missing tags (no bh=, no h=)", `v=1; a=rsa-sha256; d=example.test; s=rsa1; b=${B}`],
    ["bad base64 in b=", `v=1; a=rsa-sha256; d=example.test; s=rsa1; h=from; bh=${BH}; b=!!!*not*base64***`],
    ["unknown a=", `v=1; a=rsa-md5; d=example.test; s=rsa1; h=from; bh=${BH}; b=${B}`],
    ["l= larger than the body", `v=1; a=rsa-sha256; d=example.test; s=rsa1; h=from; l=99999999; bh=${BH}; b=${B}`],
    ["duplicate tags", `v=1; a=rsa-sha256; d=example.test; d=evil.test; s=rsa1; h=from; bh=${BH}; b=${B}`],
    ["no tags at all", `;;;===;`],
    ["a version we do not know", `v=2; a=rsa-sha256; d=example.test; s=rsa1; h=from; bh=${BH}; b=${B}`],
  ];
  for (const [what, tags] of malformed) {
    test(`malformed DKIM-Signature: ${what} → one non-pass result`, async () => {
      const { m } = await timed(Buffer.concat([sig(tags), BASE]));
      expect(m.dkim).toHaveLength(1);
      expect(["neutral", "permerror", "fail", "policy"]).toContain(m.dkim[0]!.result);
      expect(m.dkim[0]!.reason).toBeTruthy();
    });
  }

  peerTest("dkimverify", "absurd keys: 512-bit → policy; 16384-bit → policy; garbage p= → permerror; a 64 KB key answer over TCP → policy", async () => {
    const expectations: Array<[string, string, RegExp]> = [
      ["weak", "policy", /too small/],
      ["huge", "policy", /too large/],
      ["garbage", "permerror", /key/],
      ["big", "policy", /too large|too long/],
    ];
    for (const [selector, result, reason] of expectations) {
      const { m } = await timed(dkimpySign(BASE, { ...rsa, selector }));
      expect(m.dkim, selector).toHaveLength(1);
      expect(m.dkim[0], selector).toMatchObject({ selector, result });
      expect(m.dkim[0]!.reason, selector).toMatch(reason);
    }
    // The 64 KB record really came over TCP: one query for it over UDP (answered TC) and one over TCP.
    expect(stub.queries.filter((q) => q.questions![0]!.name === "big._domainkey.example.test").length).toBeGreaterThanOrEqual(2);
  });

  peerTest("dkimverify", "10,000 header fields around a good signature: pass", async () => {
    const filler = Buffer.from(Array.from({ length: 10_000 }, (_, i) => `X-Filler-${i}: value ${i}\r\n`).join(""));
    const signed = dkimpySign(BASE, rsa);
    const { m } = await timed(Buffer.concat([filler, signed]));
    expect(m.dkim.map((d) => d.result)).toEqual(["pass"]);
  });

  peerTest("dkimverify", `10,000 DKIM-Signature fields: ${MAX_SIGNATURES} verified, the rest policy, and the field stays small`, async () => {
    const signed = dkimpySign(BASE, rsa);
    const junk = Buffer.from(
      Array.from({ length: 9_999 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa1; h=from; l=${i}; bh=${BH}; b=${B}\r\n`).join(""),
    );
    const { m, ms } = await timed(Buffer.concat([signed.subarray(0, signed.indexOf("\r\nFrom:") + 2), junk, signed.subarray(signed.indexOf("\r\nFrom:") + 2)]));
    expect(m.dkim).toHaveLength(10_000);
    expect(m.dkim[0]!.result).toBe("pass");
    expect(m.dkim.slice(1, MAX_SIGNATURES).every((d) => d.result !== "pass")).toBe(true);
    expect(m.dkim.slice(MAX_SIGNATURES).every((d) => d.result === "policy" && d.domain === "example.test")).toBe(true);
    const ar = authenticationResults("mx.test", { spf: null, dkim: m.dkim, arc: m.arc, dmarc: null });
    expect(ar.length).toBeLessThan(4096);
    expect(ar).toMatch(/dkim=policy \(9990 more signatures/);
    expect(ms).toBeLessThan(5000);
  });

  test("a header section over the bound (60,000 lines) → permerror and arc=fail, nothing buffered past it", async () => {
    const lines = Buffer.from("X-A: b\r\n".repeat(60_000));
    const { m } = await timed(Buffer.concat([lines, BASE]));
    expect(m.dkim).toEqual([expect.objectContaining({ result: "permerror", reason: "header section too large to verify" })]);
    expect(m.arc.result).toBe("fail");
  });

  test("no header/body separator, binary bytes, an empty message: a result, no throw", async () => {
    for (const msg of [Buffer.from("From: a@example.test"), randomBytes(100_000), Buffer.alloc(0), Buffer.from("\r\n\r\n")]) {
      const { m } = await timed(msg, 977);
      expect(Array.isArray(m.dkim)).toBe(true);
      expect(["none", "fail", "pass"]).toContain(m.arc.result);
    }
  });
});
