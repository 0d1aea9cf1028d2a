/**
 * The inbound checks under Deno (ARCHITECTURE: the same core runs on Deno): a message signed with RSA and Ed25519
 * (by dkim/) verified by checks/ through our Resolver against a DNS server on loopback (test/spf/zone-server.ts),
 * a changed byte failing, SPF through an include, DMARC passing by aligned DKIM, and the Authentication-Results
 * field made of them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authenticationResults, checkDmarc, checkSpf, MessageVerifier } from "../../src/checks/index.ts";
import { generateKeyFile, keyFile, loadKeyring, publicRecord, signMessage } from "../../src/dkim/index.ts";
import { Resolver } from "../../src/dns/index.ts";
import { startZoneServer, type ZoneRecord } from "../spf/zone-server.ts";

declare const Deno: { test(name: string, fn: () => Promise<void>): void };

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

Deno.test("checks: DKIM (RSA, Ed25519), SPF and DMARC through our resolver under Deno", async () => {
  const data = mkdtempSync(join(tmpdir(), "ringmta-deno-checks-"));
  const zone = new Map<string, ZoneRecord[]>();
  const server = await startZoneServer(zone);
  try {
    for (const [s, algo] of [["rsa1", "rsa"], ["ed1", "ed25519"]] as const) {
      const record = publicRecord(generateKeyFile(keyFile(data, "example.test", s), algo, 2048));
      zone.set(`${s}._domainkey.example.test`, [{ type: "TXT", data: [record] }]);
    }
    zone.set("example.test", [{ type: "TXT", data: ["v=spf1 include:_spf.example.test -all"] }]);
    zone.set("_spf.example.test", [{ type: "TXT", data: ["v=spf1 ip4:192.0.2.0/24 -all"] }]);
    zone.set("_dmarc.example.test", [{ type: "TXT", data: ["v=DMARC1; p=reject"] }]);
    const k = loadKeyring(data, { "example.test": ["rsa1", "ed1"] });
    assert(k.ok, "keys load");
    const msg = new TextEncoder().encode("From: Jörg <j@example.test>\r\nSubject: Grüße\r\nTo: b@remote.test\r\n\r\nÄ  b\r\n");
    const signed = signMessage(msg, k.keyring, Date.now());
    assert(signed.kind === "signed", "signed");
    const whole = new Uint8Array([...new TextEncoder().encode(signed.fields), ...msg]);
    const dns = new Resolver({ servers: [server.server], timeoutMs: 1000, attempts: 1 });

    const verify = async (bytes: Uint8Array) => {
      const v = new MessageVerifier({ dns, dkim: true, arc: true });
      for (let i = 0; i < bytes.length; i += 5) v.write(bytes.subarray(i, i + 5));
      return v.end();
    };
    const good = await verify(whole);
    assert(good.dkim.map((d) => `${d.selector}:${d.result}`).join() === "rsa1:pass,ed1:pass", `dkim ${JSON.stringify(good.dkim)}`);
    const tampered = whole.slice();
    tampered[tampered.length - 3] ^= 1;
    const bad = await verify(tampered);
    assert(bad.dkim.every((d) => d.result === "fail"), `tampered ${JSON.stringify(bad.dkim)}`);

    const spf = await checkSpf({ ip: "192.0.2.7", helo: "mx.example.test", sender: "j@example.test" }, dns);
    assert(spf.result === "pass", `spf ${spf.result}`);
    const dmarc = await checkDmarc({ fromDomains: good.fromDomains, spf, dkim: good.dkim, arc: good.arc, dns });
    assert(dmarc.result === "pass" && dmarc.policy === "reject", `dmarc ${JSON.stringify(dmarc)}`);
    const field = authenticationResults("mx.deno.test", { spf, dkim: good.dkim, arc: good.arc, dmarc });
    assert(/^Authentication-Results: mx\.deno\.test;/.test(field) && /dmarc=pass/.test(field), field);
  } finally {
    await server.stop();
    rmSync(data, { recursive: true, force: true });
  }
});
