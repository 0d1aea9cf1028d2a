/**
 * MessageVerifier against an outside signer: dkimpy signs (DKIM RSA and ed25519, ARC), dnsmasq serves the keys
 * (RSA records as several strings of one TXT record) to our Resolver, and dkimpy validates the ARC sets we add.
 */
import { Buffer } from "node:buffer";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { Resolver } from "../../src/dns/index.ts";
import { authenticationResults, MessageVerifier, type VerifiedMessage } from "../../src/checks/index.ts";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import { havePeer, peerTest } from "../helpers/peers.ts";
import { dkimpyArcSign, dkimpyArcVerify, dkimpySign, ed25519Key, keyName, rsaKey, txtRecord, type TestKey } from "./dkimpy.ts";

const BASE = Buffer.from(
  [
    "From: Alice <alice@example.test>",
    "To: bob@mx.test",
    "Subject: checks engine",
    "Date: Wed, 03 Dec 2025 10:00:00 +0000",
    "Message-ID: <m1@example.test>",
    "",
    "Hello Bob,",
    "",
    "a body of a few lines.",
    "",
  ].join("\r\n"),
);

const rsa = rsaKey("example.test", "rsa1");
const ed = ed25519Key("example.test", "ed1");
const fwd = rsaKey("forwarder.test", "arc1");
const ours = rsaKey("mx.test", "seal1");

let dns: Dnsmasq | null = null;
let resolver: Resolver;

beforeAll(async () => {
  if (!havePeer("dnsmasq")) return;
  dns = await startDnsmasq({
    zones: ["example.test", "forwarder.test", "mx.test"],
    txt: [rsa, ed, fwd, ours].map((k) => txtRecord(keyName(k), k.record)),
  });
  resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000, attempts: 1 });
});
afterAll(async () => {
  await dns?.stop();
});

/** Feeds the message in chunks of 1–97 bytes, as a session would hand them over. */
async function verify(msg: Uint8Array, o: { dkim?: boolean; arc?: boolean; sealer?: TestKey } = {}): Promise<VerifiedMessage> {
  const v = new MessageVerifier({
    dns: resolver,
    dkim: o.dkim ?? true,
    arc: o.arc ?? true,
    sealer: o.sealer ? { domain: o.sealer.domain, selector: o.sealer.selector, key: o.sealer.private } : null,
  });
  let step = 1;
  for (let i = 0; i < msg.length; i += step, step = (step * 7 + 3) % 97 || 1) {
    const lent = Uint8Array.from(msg.subarray(i, i + step));
    v.write(lent);
    lent.fill(0x58); // lent only for the call
  }
  return v.end();
}

function results(m: VerifiedMessage): string[] {
  return m.dkim.map((d) => `${d.selector}:${d.result}`);
}

/** Replaces the first occurrence of `from` after the header section with `to` (same length). */
function tamperBody(msg: Buffer, from: string, to: string): Buffer {
  const start = msg.indexOf("\r\n\r\n");
  const at = msg.indexOf(from, start);
  const out = Buffer.from(msg);
  out.write(to, at);
  return out;
}

describe("MessageVerifier (dkimpy signs, dnsmasq serves the keys)", () => {
  peerTest(["dnsmasq", "dkimverify"], "RSA-2048 and ed25519 signatures by dkimpy pass; the RSA key is a record of several strings", async () => {
    const signed = dkimpySign(dkimpySign(BASE, rsa), ed);
    const m = await verify(signed);
    expect(results(m)).toEqual(["ed1:pass", "rsa1:pass"]);
    expect(m.dkim[0]).toMatchObject({ domain: "example.test", algorithm: "ed25519-sha256" });
    expect(m.dkim[1]!.b).toHaveLength(8);
    expect(m.fromDomains).toEqual(["example.test"]);
    expect(m.arc).toEqual({ result: "none", instance: 0 });
  });

  peerTest(["dnsmasq", "dkimverify"], "a changed body byte fails on the body hash; a changed signed header fails on the signature", async () => {
    const signed = dkimpySign(dkimpySign(BASE, rsa), ed);
    const body = await verify(tamperBody(signed, "Hello", "Jello"));
    expect(results(body)).toEqual(["ed1:fail", "rsa1:fail"]);
    expect(body.dkim[0]!.reason).toMatch(/body hash/);
    const header = await verify(Buffer.from(signed.toString("latin1").replace("Subject: checks engine", "Subject: checks engiNe"), "latin1"));
    expect(results(header)).toEqual(["ed1:fail", "rsa1:fail"]);
    expect(header.dkim[0]!.reason).toMatch(/signature/);
  });

  peerTest(["dnsmasq", "dkimverify"], "unsigned → no outcomes; checks.dkim off → none reported even for a signed message", async () => {
    expect((await verify(BASE)).dkim).toEqual([]);
    const off = await verify(dkimpySign(BASE, rsa), { dkim: false });
    expect(off.dkim).toEqual([]);
    expect(off.fromDomains).toEqual(["example.test"]);
  });

  peerTest(["dnsmasq", "dkimverify", "authres"], "an ARC set by dkimpy's arc_sign passes; tampering with the body makes the chain fail", async () => {
    const withAr = Buffer.concat([Buffer.from("Authentication-Results: forwarder.test; spf=pass smtp.mailfrom=alice@example.test\r\n"), dkimpySign(BASE, rsa)]);
    const sealed = dkimpyArcSign(withAr, fwd, "forwarder.test");
    expect(sealed.toString("latin1")).toMatch(/^ARC-Seal: i=1/);
    const m = await verify(sealed);
    expect(m.arc).toEqual({ result: "pass", instance: 1 });
    expect(results(m)).toEqual(["rsa1:pass"]);
    const bad = await verify(tamperBody(sealed, "Hello", "Jello"));
    expect(bad.arc.result).toBe("fail");
    expect(bad.arc.instance).toBe(1);
    expect(results(bad)).toEqual(["rsa1:fail"]);
  });

  peerTest(["dnsmasq", "dkimverify", "authres"], "our seal (i=1 on a fresh message, i=2 on one dkimpy sealed) validates with dkimpy's arc_verify", async () => {
    const signed = dkimpySign(BASE, rsa);
    const m1 = await verify(signed, { sealer: ours });
    const ar1 = authenticationResults("mx.test", { spf: null, dkim: m1.dkim, arc: m1.arc, dmarc: null });
    const set1 = await m1.seal(ar1.slice("Authentication-Results: ".length), Date.now());
    expect(set1).not.toBeNull();
    expect(set1!).toMatch(/^ARC-Seal: i=1;[^]*\r\nARC-Message-Signature: i=1;[^]*\r\nARC-Authentication-Results: i=1; mx\.test;[^]*\r\n$/);
    const out1 = Buffer.concat([Buffer.from(set1!), Buffer.from(ar1), signed]);
    expect(dkimpyArcVerify(out1, [ours])).toEqual({ cv: "pass", reason: "success" });

    const withAr = Buffer.concat([Buffer.from("Authentication-Results: forwarder.test; spf=pass smtp.mailfrom=alice@example.test\r\n"), signed]);
    const sealed = dkimpyArcSign(withAr, fwd, "forwarder.test");
    const m2 = await verify(sealed, { sealer: ours });
    expect(m2.arc.result).toBe("pass");
    const ar2 = authenticationResults("mx.test", { spf: null, dkim: m2.dkim, arc: m2.arc, dmarc: null });
    const set2 = await m2.seal(ar2.slice("Authentication-Results: ".length), Date.now());
    expect(set2!).toMatch(/^ARC-Seal: i=2; [^]*cv=pass/);
    const out2 = Buffer.concat([Buffer.from(set2!), Buffer.from(ar2), sealed]);
    expect(dkimpyArcVerify(out2, [fwd, ours])).toEqual({ cv: "pass", reason: "success" });
    // And we validate our own i=2 chain.
    expect((await verify(out2)).arc).toEqual({ result: "pass", instance: 2 });
  });

  peerTest(["dnsmasq", "dkimverify", "authres"], "no seal without a sealer, with checks.arc off, or over a failed chain", async () => {
    const signed = dkimpySign(BASE, rsa);
    expect(await (await verify(signed)).seal("mx.test; none", Date.now())).toBeNull();
    expect(await (await verify(signed, { arc: false, sealer: ours })).seal("mx.test; none", Date.now())).toBeNull();
    const withAr = Buffer.concat([Buffer.from("Authentication-Results: forwarder.test; spf=pass smtp.mailfrom=alice@example.test\r\n"), signed]);
    const tampered = tamperBody(dkimpyArcSign(withAr, fwd, "forwarder.test"), "Hello", "Jello");
    const m = await verify(tampered, { sealer: ours });
    expect(m.arc.result).toBe("fail");
    expect(await m.seal("mx.test; arc=fail", Date.now())).toBeNull();
  });

  peerTest("dnsmasq", "abort() releases the verifier; end() afterwards reports nothing", async () => {
    const v = new MessageVerifier({ dns: resolver, dkim: true, arc: true });
    v.write(BASE.subarray(0, 40));
    v.abort();
    const m = await v.end();
    expect(m.dkim).toEqual([]);
    expect(m.arc.result).toBe("none");
  });
});
