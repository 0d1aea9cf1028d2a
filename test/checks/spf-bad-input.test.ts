/**
 * SPF on hostile DNS data: every case gets a result (never a throw) within a generous bound, through our Resolver
 * and a real DNS server on loopback (test/spf/zone-server.ts; UDP, and TCP for what does not fit). The bound is a
 * guard against unbounded work, not a performance claim.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { checkSpf, type SpfOutcome, type SpfQuery } from "../../src/checks/index.ts";
import { Resolver } from "../../src/dns/index.ts";
import { startZoneServer, type Zone, type ZoneRecord, type ZoneServer } from "../spf/zone-server.ts";

const BOUND_MS = 5000;
const spf = (record: string): ZoneRecord => ({ type: "TXT", data: [record] });

/** ip4 terms up to about `bytes` octets: one record, no lookups, which must be read whole to be judged. */
function bigRecord(bytes: number): string {
  const terms: string[] = [];
  let len = 6;
  for (let i = 0; len < bytes; i++) {
    const t = `ip4:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    terms.push(t);
    len += t.length + 1;
  }
  return `v=spf1 ${terms.join(" ")} -all`;
}

const includes = (n: number) => Array.from({ length: n }, (_, i) => `include:i${i}.inc30.test`).join(" ");
const LONG_LOCAL = `${"abcdefghi.".repeat(24)}x`;

const ZONE: Zone = new Map<string, ZoneRecord[]>([
  // about 63 KB in one TXT record: the whole DNS message stays under 64 KB, the most TCP can carry
  ["big.test", [spf(bigRecord(63_000))]],
  // as many non-SPF TXT records, each of several strings: the answer is as big, there is no SPF record in it
  ["bignone.test", Array.from({ length: 120 }, (_, i) => ({ type: "TXT" as const, data: [`filler ${i} ${"x".repeat(480)}`] }))],
  ["inc30.test", [spf(`v=spf1 ${includes(30)} -all`)]],
  ...Array.from({ length: 30 }, (_, i): [string, ZoneRecord[]] => [`i${i}.inc30.test`, [spf("v=spf1 ip4:203.0.113.1")]]),
  ["loop-a.test", [spf("v=spf1 include:loop-b.test -all")]],
  ["loop-b.test", [spf("v=spf1 include:loop-a.test -all")]],
  ["self.test", [spf("v=spf1 redirect=self.test")]],
  // %{s} four times: about 1000 characters before §7.3's truncation to 253 from the left
  ["longmacro.test", [spf("v=spf1 exists:%{s}.%{s}.%{s}.%{s}.longmacro.test -all")]],
  ["slow.test", [spf("v=spf1 a:never.slow.test -all")]],
  ["never.slow.test", ["TIMEOUT"]],
]);

describe("SPF on bad input: a result in bounded time", () => {
  let server: ZoneServer;
  beforeAll(async () => {
    server = await startZoneServer(ZONE);
  });
  afterAll(async () => {
    await server.stop();
  });

  async function timed(q: SpfQuery, opts?: { timeoutMs?: number }, resolverTimeoutMs = 500): Promise<{ out: SpfOutcome; ms: number }> {
    const resolver = new Resolver({ servers: [server.server], timeoutMs: resolverTimeoutMs, attempts: 1 });
    const t0 = performance.now();
    const out = await checkSpf(q, resolver, opts);
    return { out, ms: performance.now() - t0 };
  }
  const q = (sender: string, ip = "192.0.2.1"): SpfQuery => ({ ip, sender, helo: "client.example" });

  test("a 63 KB SPF record (over TCP) is read whole and evaluated", async () => {
    const tcp = server.counts.tcp;
    const { out, ms } = await timed(q("x@big.test"));
    expect(out.result).toBe("fail");
    expect(server.counts.tcp).toBeGreaterThan(tcp);
    expect(ms).toBeLessThan(BOUND_MS);
    const last = await timed(q("x@big.test", "10.0.1.200"));
    expect(last.out.result).toBe("pass");
  });

  test("a 64 KB answer of non-SPF TXT records is none", async () => {
    const { out, ms } = await timed(q("x@bignone.test"));
    expect(out.result).toBe("none");
    expect(ms).toBeLessThan(BOUND_MS);
  });

  test("30 includes: permerror at the 11th lookup (RFC 7208 §4.6.4)", async () => {
    const { out, ms } = await timed(q("x@inc30.test"));
    expect(out.result).toBe("permerror");
    expect(out.reason).toMatch(/too many dns/i);
    expect(ms).toBeLessThan(BOUND_MS);
  });

  test("an include loop and a redirect to itself end at the lookup limit", async () => {
    for (const sender of ["x@loop-a.test", "x@self.test"]) {
      const { out, ms } = await timed(q(sender));
      expect(out.result).toBe("permerror");
      expect(ms).toBeLessThan(BOUND_MS);
    }
  });

  test("a macro expanding to a 1000-character name is truncated (§7.3) and looked up", async () => {
    const sender = `${LONG_LOCAL}@longmacro.test`;
    expect(4 * sender.length).toBeGreaterThan(1000);
    const { out, ms } = await timed(q(sender));
    expect(out.result).toBe("fail");
    expect(ms).toBeLessThan(BOUND_MS);
  });

  test("DNS that never answers: temperror; the whole-evaluation deadline ends it sooner", async () => {
    const slow = await timed(q("x@slow.test"));
    expect(slow.out.result).toBe("temperror");
    expect(slow.ms).toBeLessThan(BOUND_MS);
    // The resolver would wait 4 s for this query; the deadline (timeoutMs) ends the evaluation first.
    const capped = await timed(q("x@slow.test"), { timeoutMs: 200 }, 4000);
    expect(capped.out.result).toBe("temperror");
    expect(capped.out.reason).toMatch(/time limit/i);
    expect(capped.ms).toBeLessThan(2000);
  });

  test("a client address that is no address, a sender without a domain: a result, never a throw", async () => {
    expect((await timed(q("x@big.test", "not-an-ip"))).out.result).toBe("temperror");
    expect((await timed({ ip: "192.0.2.1", sender: "x@", helo: "" })).out.result).toBe("none");
    expect((await timed({ ip: "192.0.2.1", sender: "", helo: "" })).out).toMatchObject({ result: "none", scope: "helo", domain: "" });
  });
});
