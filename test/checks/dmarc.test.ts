/**
 * checkDmarc against records served by dnsmasq through our Resolver, and a DNS server that never answers for the
 * temperror row; decide() for every CONTRACT reply row.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Resolver } from "../../src/dns/index.ts";
import { checkDmarc, decide, organizationalDomain, type DkimOutcome, type SpfOutcome } from "../../src/checks/index.ts";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import { startDnsStub, type DnsStub } from "../helpers/dns-stub.ts";
import { havePeer, peerTest } from "../helpers/peers.ts";

const ZONES = ["example.test", "strict.test", "q.test", "n.test", "pct.test", "norecord.test", "twice.test", "bad.test"];

let dns: Dnsmasq | null = null;
let silent: DnsStub;
let resolver: Resolver;

beforeAll(async () => {
  silent = await startDnsStub(() => []); // drops every query
  if (!havePeer("dnsmasq")) return;
  dns = await startDnsmasq({
    zones: ZONES,
    txt: [
      "_dmarc.example.test,v=DMARC1; p=reject; sp=quarantine",
      "_dmarc.strict.test,v=DMARC1; p=reject; adkim=s; aspf=s",
      "_dmarc.q.test,v=DMARC1; p=quarantine",
      "_dmarc.n.test,v=DMARC1; p=none",
      "_dmarc.pct.test,v=DMARC1; p=reject; pct=50",
      "_dmarc.twice.test,v=DMARC1; p=reject",
      "_dmarc.twice.test,v=DMARC1; p=none",
      "_dmarc.bad.test,v=DMARC1; p=reject; p=none",
    ],
  });
  resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000, attempts: 1 });
});
afterAll(async () => {
  await dns?.stop();
  await silent.stop();
});

const NO_ARC = { result: "none", instance: 0 } as const;

function spf(result: SpfOutcome["result"], domain: string): SpfOutcome {
  return { result, scope: "mailfrom", domain, property: `smtp.mailfrom=bounce@${domain}` };
}
function dkim(result: DkimOutcome["result"], domain: string): DkimOutcome {
  return { result, domain, selector: "s1", algorithm: "rsa-sha256", b: "abcdefgh" };
}

async function dmarc(from: string | string[], o: { spf?: SpfOutcome | null; dkim?: DkimOutcome[] } = {}) {
  return checkDmarc({ fromDomains: typeof from === "string" ? [from] : from, spf: o.spf ?? null, dkim: o.dkim ?? [], arc: NO_ARC, dns: resolver });
}

describe("checkDmarc (records served by dnsmasq)", () => {
  peerTest("dnsmasq", "pass through an aligned DKIM signature (relaxed: a subdomain of the From domain's organization)", async () => {
    const r = await dmarc("example.test", { dkim: [dkim("fail", "example.test"), dkim("pass", "mail.example.test")] });
    expect(r).toMatchObject({ result: "pass", fromDomain: "example.test", policy: "reject" });
    expect(r.orgDomain).toBeUndefined();
  });

  peerTest("dnsmasq", "pass through an aligned SPF pass; an SPF softfail or an unaligned DKIM pass does not count", async () => {
    expect(await dmarc("example.test", { spf: spf("pass", "bounces.example.test") })).toMatchObject({ result: "pass" });
    expect(await dmarc("example.test", { spf: spf("softfail", "example.test"), dkim: [dkim("pass", "other.test")] })).toMatchObject({
      result: "fail",
      policy: "reject",
    });
  });

  peerTest("dnsmasq", "strict alignment (adkim=s, aspf=s) needs the exact From domain", async () => {
    expect(await dmarc("strict.test", { spf: spf("pass", "mail.strict.test"), dkim: [dkim("pass", "mail.strict.test")] })).toMatchObject({
      result: "fail",
    });
    expect(await dmarc("strict.test", { dkim: [dkim("pass", "strict.test")] })).toMatchObject({ result: "pass" });
  });

  peerTest("dnsmasq", "fail under p=reject, p=quarantine and p=none, each with its policy", async () => {
    expect(await dmarc("example.test")).toMatchObject({ result: "fail", policy: "reject" });
    expect(await dmarc("q.test")).toMatchObject({ result: "fail", policy: "quarantine" });
    expect(await dmarc("n.test")).toMatchObject({ result: "fail", policy: "none" });
  });

  peerTest("dnsmasq", "a subdomain without a record falls back to the organizational domain's record and its sp=", async () => {
    const r = await dmarc("a.b.example.test");
    expect(r).toMatchObject({ result: "fail", fromDomain: "a.b.example.test", policy: "quarantine", orgDomain: "example.test" });
    // No sp=: the subdomain gets p=.
    expect(await dmarc("x.q.test")).toMatchObject({ policy: "quarantine", orgDomain: "q.test" });
    expect(organizationalDomain("a.b.example.co.uk")).toBe("example.co.uk");
  });

  peerTest("dnsmasq", "no record → none; two records or a record with a duplicated tag → none (RFC 7489 §6.6.3)", async () => {
    expect(await dmarc("norecord.test")).toMatchObject({ result: "none", policy: "none" });
    expect(await dmarc("twice.test")).toMatchObject({ result: "none" });
    expect(await dmarc("bad.test")).toMatchObject({ result: "none" });
  });

  peerTest("dnsmasq", "pct below 100 applies the next weaker policy to every message (deterministic)", async () => {
    const r = await dmarc("pct.test");
    expect(r).toMatchObject({ result: "fail", policy: "quarantine" });
    expect(r.reason).toMatch(/pct=50/);
  });

  peerTest("dnsmasq", "no single From domain → permerror", async () => {
    expect(await dmarc([])).toMatchObject({ result: "permerror", fromDomain: "" });
    expect(await dmarc(["example.test", "q.test"])).toMatchObject({ result: "permerror" });
  });

  test("a _dmarc lookup that times out → temperror, within the resolver's timeout", async () => {
    const quiet = new Resolver({ servers: [silent.server], timeoutMs: 300, attempts: 1 });
    const t0 = Date.now();
    const r = await checkDmarc({ fromDomains: ["example.test"], spf: null, dkim: [dkim("pass", "example.test")], arc: NO_ARC, dns: quiet });
    expect(r).toMatchObject({ result: "temperror", fromDomain: "example.test" });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(silent.queries.at(-1)!.questions![0]!.name).toBe("_dmarc.example.test");
  });
});

describe("decide (CONTRACT reply rows)", () => {
  const fail = (policy: "none" | "quarantine" | "reject") => ({ result: "fail" as const, fromDomain: "example.test", policy });
  const ok = spf("pass", "other.test");

  test("enforce: reject → 550 5.7.1; quarantine → quarantine; none → accept", () => {
    const r = decide({ spf: ok, dkim: [], dmarc: fail("reject"), mode: "enforce" });
    expect(r.kind).toBe("reject");
    expect(r.kind === "reject" && r.reply).toMatch(/^550 5\.7\.1 /);
    expect(decide({ spf: ok, dkim: [], dmarc: fail("quarantine"), mode: "enforce" })).toEqual({ kind: "quarantine" });
    expect(decide({ spf: ok, dkim: [], dmarc: fail("none"), mode: "enforce" })).toEqual({ kind: "accept" });
  });

  test("policy reject, DMARC not passing, SPF or a DKIM result temperror → 451 4.7.0, never a 5xx", () => {
    for (const o of [
      { spf: spf("temperror", "example.test"), dkim: [] },
      { spf: ok, dkim: [dkim("fail", "example.test"), dkim("temperror", "example.test")] },
    ]) {
      const r = decide({ ...o, dmarc: fail("reject"), mode: "enforce" });
      expect(r.kind).toBe("tempfail");
      expect(r.kind === "tempfail" && r.reply).toMatch(/^451 4\.7\.0 /);
    }
    // Under quarantine a temperror changes nothing.
    expect(decide({ spf: spf("temperror", "x.test"), dkim: [], dmarc: fail("quarantine"), mode: "enforce" })).toEqual({ kind: "quarantine" });
  });

  test("dmarc temperror, none, permerror and pass → accept; mode on and off never act", () => {
    for (const result of ["temperror", "none", "permerror", "pass"] as const) {
      expect(decide({ spf: null, dkim: [], dmarc: { result, fromDomain: "example.test", policy: "reject" }, mode: "enforce" })).toEqual({
        kind: "accept",
      });
    }
    for (const mode of ["on", "off"] as const) {
      expect(decide({ spf: ok, dkim: [], dmarc: fail("reject"), mode })).toEqual({ kind: "accept" });
    }
    expect(decide({ spf: null, dkim: [], dmarc: null, mode: "enforce" })).toEqual({ kind: "accept" });
  });
});
