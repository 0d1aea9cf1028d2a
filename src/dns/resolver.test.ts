/**
 * The stub resolver against real servers: dnsmasq on loopback for real answers (split TXT, NXDOMAIN vs NODATA,
 * TC → TCP, TLSA, CNAME), and small UDP servers of our own for what dnsmasq will not do on demand (silence,
 * garbage, a wrong id, SERVFAIL, exact TTLs and SOAs, packet counting for the cache).
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import * as packet from "dns-packet";
import { startDnsmasq, type Dnsmasq } from "../../test/helpers/dnsmasq.ts";
import { reply, soa, startDnsStub, type DnsStub, type StubAnswer } from "../../test/helpers/dns-stub.ts";
import { havePeer, peerTest } from "../../test/helpers/peers.ts";
import { freePorts } from "../../test/helpers/ports.ts";
import { udpExchange } from "./transport.ts";
import { buildQuery } from "./wire.ts";
import { LookupBudget, LookupLimitError, nodeDnsAdapter, parseResolvConf, parseServer, Resolver, resolveServers, reverseName } from "./index.ts";

const A = "a".repeat(200);
const B = "b".repeat(200);
/** Eight TXT records of 250 octets: over 2000 octets, more than the 1232 we advertise over UDP. */
const BIG = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(250));
const TLSA_HEX = "3082010a0282010100c0ffee";

const stubs: DnsStub[] = [];
async function stub(answer: StubAnswer): Promise<DnsStub> {
  const s = await startDnsStub(answer);
  stubs.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(stubs.map((s) => s.stop()));
});

const aRecord = (name: string, ip: string, ttl = 60): packet.Answer => ({ type: "A", name, ttl, data: ip });

describe("Resolver against dnsmasq", () => {
  let dns: Dnsmasq | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    dns = await startDnsmasq({
      zones: ["test"],
      mx: ["two.test,mx1.two.test,10", "two.test,mx2.two.test,20", "null.test,.,0"],
      hosts: ["mx1.two.test,127.0.0.2", "mx2.two.test,127.0.0.3,::3", "v6.test,::1"],
      txt: [`long.test,${A},${B}`, "multi.test,v=spf1 -all", "multi.test,other,record", ...BIG.map((t) => `big.test,${t}`)],
      cnames: ["alias.test,mx1.two.test"],
      extra: [`--dns-rr=_25._tcp.mx1.two.test,52,030101${TLSA_HEX}`],
    });
  });
  afterAll(async () => {
    await dns?.stop();
  });
  const resolver = () => new Resolver({ servers: [dns!.server], timeoutMs: 1000 });

  peerTest("dnsmasq", "a TXT record split into several strings comes back as one string; records stay separate", async () => {
    const r = resolver();
    expect(await r.lookup("long.test", "TXT")).toMatchObject({ status: "ok", records: [A + B], ad: false });
    const multi = await r.lookup("multi.test", "TXT");
    expect(multi.records.sort()).toEqual(["otherrecord", "v=spf1 -all"]);
    expect(await nodeDnsAdapter(r).resolveTxt("long.test")).toEqual([[A + B]]);
  });

  peerTest("dnsmasq", "NXDOMAIN, NODATA and records are told apart", async () => {
    const r = resolver();
    expect(await r.lookup("nowhere.test", "MX")).toMatchObject({ status: "nxdomain", records: [] });
    expect(await r.lookup("mx1.two.test", "MX")).toMatchObject({ status: "nodata", records: [] });
    expect(await r.lookup("two.test", "A")).toMatchObject({ status: "nodata", records: [] });
    const mx = await r.lookup("TWO.test.", "MX");
    expect(mx.status).toBe("ok");
    expect(mx.records.sort((a, b) => a.preference - b.preference)).toEqual([
      { exchange: "mx1.two.test", preference: 10 },
      { exchange: "mx2.two.test", preference: 20 },
    ]);
    expect(await r.lookup("null.test", "MX")).toMatchObject({ status: "ok", records: [{ exchange: ".", preference: 0 }] });
    expect(await r.lookup("mx2.two.test", "AAAA")).toMatchObject({ status: "ok", records: ["::3"] });
    expect(await r.addresses("mx2.two.test")).toMatchObject({ status: "ok", records: ["127.0.0.3", "::3"] });
  });

  peerTest("dnsmasq", "a CNAME is followed as the answer gives it", async () => {
    const r = resolver();
    expect(await r.lookup("alias.test", "A")).toMatchObject({ status: "ok", records: ["127.0.0.2"], cnames: ["mx1.two.test"] });
    expect(await r.lookup("alias.test", "CNAME")).toMatchObject({ status: "ok", records: ["mx1.two.test"] });
  });

  peerTest("dnsmasq", "TLSA records: usage, selector, matching type and the data bytes", async () => {
    const t = await resolver().lookup("_25._tcp.mx1.two.test", "TLSA");
    expect(t.status).toBe("ok");
    expect(t.records).toHaveLength(1);
    const rec = t.records[0];
    expect([rec.usage, rec.selector, rec.matchingType]).toEqual([3, 1, 1]);
    expect(Buffer.from(rec.data).toString("hex")).toBe(TLSA_HEX);
  });

  peerTest("dnsmasq", "an answer over the UDP payload size comes truncated and is asked again over TCP", async () => {
    // The server does truncate it over UDP: the same question sent by hand comes back with TC.
    const q = buildQuery("big.test", "TXT", true);
    const udp = await udpExchange(parseServer(dns!.server)!, q, 1000);
    expect(udp.kind === "packet" && udp.packet.flag_tc).toBe(true);
    const big = await resolver().lookup("big.test", "TXT");
    expect(big.status).toBe("ok");
    expect(big.records.sort()).toEqual([...BIG].sort());
    // The same with the smallest EDNS payload (RFC 6891 §6.2.5: values below 512 are treated as 512).
    const small = new Resolver({ servers: [dns!.server], timeoutMs: 1000, udpPayload: 512 });
    expect((await small.lookup("long.test", "TXT")).records).toEqual([A + B]);
    expect((await small.lookup("big.test", "TXT")).records).toHaveLength(8);
  });

  peerTest("dnsmasq", "a dead server (silent, or a closed port) is skipped: the next one answers", async () => {
    const silent = await stub(() => []);
    const [closed] = await freePorts(1);
    const r = new Resolver({ servers: [silent.server, `127.0.0.1:${closed}`, dns!.server], timeoutMs: 300 });
    const t0 = Date.now();
    expect(await r.lookup("mx1.two.test", "A")).toMatchObject({ status: "ok", records: ["127.0.0.2"] });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(silent.queries).toHaveLength(1);
  });

  peerTest("dnsmasq", "garbage, a wrong id or another question from a server: ignored or a failure, never a crash", async () => {
    const garbage = await stub((q) => [Buffer.concat([Buffer.from([q.id! >> 8, q.id! & 0xff]), randomBytes(40)])]);
    const noise = await stub(() => [randomBytes(3), randomBytes(100), randomBytes(700)]);
    const r = new Resolver({ servers: [garbage.server, noise.server, dns!.server], timeoutMs: 300 });
    expect(await r.lookup("mx1.two.test", "A")).toMatchObject({ status: "ok", records: ["127.0.0.2"] });
    expect(garbage.queries.length).toBeGreaterThan(0);
    expect(noise.queries.length).toBeGreaterThan(0);
    // Alone, a garbage server is a server failure (temporary), and random noise a timeout.
    expect(await new Resolver({ servers: [garbage.server], timeoutMs: 300, attempts: 1 }).lookup("x.test", "MX")).toMatchObject({ status: "servfail", records: [], ad: false });
    expect(await new Resolver({ servers: [noise.server], timeoutMs: 300, attempts: 1 }).lookup("x.test", "MX")).toMatchObject({ status: "timeout", records: [] });
  });
});

describe("Resolver against small servers of our own", () => {
  test("a spoofed answer (wrong id, or another name) is ignored; the real one after it is taken", async () => {
    const s = await stub((q) => {
      const name = q.questions![0].name;
      const other = { ...q, questions: [{ ...q.questions![0], name: "evil.test" }] } as packet.DecodedPacket;
      return [
        reply(q, { id: (q.id! + 1) & 0xffff, answers: [aRecord(name, "6.6.6.6")] }),
        reply(other, { answers: [aRecord("evil.test", "6.6.6.7")] }),
        reply(q, { answers: [aRecord(name, "192.0.2.1")] }),
      ];
    });
    const r = new Resolver({ servers: [s.server], timeoutMs: 1000 });
    expect(await r.lookup("good.test", "A")).toMatchObject({ status: "ok", records: ["192.0.2.1"] });
  });

  test("queries carry a random id, RD, and EDNS0 with the DO bit and a 1232-octet payload", async () => {
    const s = await stub((q) => [reply(q, { rcode: 3 })]);
    const r = new Resolver({ servers: [s.server], timeoutMs: 1000 });
    await Promise.all(["a.test", "b.test", "c.test", "d.test"].map((n) => r.lookup(n, "A")));
    expect(new Set(s.queries.map((q) => q.id)).size).toBe(4);
    for (const q of s.queries) {
      expect(q.flag_rd).toBe(true);
      const opt = q.additionals!.find((a) => a.type === "OPT") as packet.OptAnswer;
      expect(opt).toMatchObject({ udpPayloadSize: 1232, flag_do: true });
    }
  });

  test("an IPv6 server ([::1]:port) is asked over udp6", async () => {
    const s6 = await startDnsStub((q) => [reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.10")] })], "::1");
    stubs.push(s6);
    const r = new Resolver({ servers: [s6.server], timeoutMs: 1000 });
    expect(await r.lookup("v6server.test", "A")).toMatchObject({ status: "ok", records: ["192.0.2.10"] });
    expect(s6.queries).toHaveLength(1);
  });

  test("the AD bit of the answer is on the result", async () => {
    const s = await stub((q) => [reply(q, { ad: q.questions![0].name === "signed.test", answers: [aRecord(q.questions![0].name, "192.0.2.9")] })]);
    const r = new Resolver({ servers: [s.server], timeoutMs: 1000 });
    expect(await r.lookup("signed.test", "A")).toMatchObject({ status: "ok", ad: true });
    expect(await r.lookup("plain.test", "A")).toMatchObject({ status: "ok", ad: false });
  });

  test("FORMERR to EDNS: asked again without OPT (RFC 6891 §7)", async () => {
    const s = await stub((q) => {
      const hasOpt = (q.additionals ?? []).some((a) => a.type === "OPT");
      return [hasOpt ? reply(q, { rcode: 1 }) : reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.3")] })];
    });
    const r = new Resolver({ servers: [s.server], timeoutMs: 1000 });
    expect(await r.lookup("old.test", "A")).toMatchObject({ status: "ok", records: ["192.0.2.3"] });
  });

  test("SERVFAIL from the first server: the next one is asked; SERVFAIL everywhere is servfail", async () => {
    const bad = await stub((q) => [reply(q, { rcode: 2 })]);
    const good = await stub((q) => [reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.4")] })]);
    expect(await new Resolver({ servers: [bad.server, good.server] }).lookup("x.test", "A")).toMatchObject({ status: "ok", records: ["192.0.2.4"] });
    expect(await new Resolver({ servers: [bad.server], attempts: 2 }).lookup("y.test", "A")).toMatchObject({ status: "servfail" });
    expect(bad.queries.filter((q) => q.questions![0].name === "y.test")).toHaveLength(2);
  });

  test("cache: a second lookup is served without a packet until the TTL runs out; concurrent lookups share one query", async () => {
    let now = 1_000_000;
    const s = await stub((q) => [reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.5", 60)] })]);
    const r = new Resolver({ servers: [s.server], now: () => now });
    expect(await r.lookup("c.test", "A")).toMatchObject({ status: "ok", ttl: 60 });
    now += 20_000;
    expect(await r.lookup("C.TEST.", "A")).toMatchObject({ status: "ok", records: ["192.0.2.5"], ttl: 40 });
    expect(s.queries).toHaveLength(1);
    now += 41_000;
    await r.lookup("c.test", "A");
    expect(s.queries).toHaveLength(2);
    const all = await Promise.all(Array.from({ length: 10 }, () => r.lookup("shared.test", "A")));
    expect(all.every((x) => x.records[0] === "192.0.2.5")).toBe(true);
    expect(s.queries).toHaveLength(3);
  });

  test("TTL clamps: min_ttl and max_ttl bound what is kept", async () => {
    let now = 0;
    const s = await stub((q) => [reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.6", q.questions![0].name === "long.test" ? 999_999 : 1)] })]);
    const r = new Resolver({ servers: [s.server], now: () => now, minTtl: 30, maxTtl: 300 });
    expect(await r.lookup("short.test", "A")).toMatchObject({ ttl: 30 });
    expect(await r.lookup("long.test", "A")).toMatchObject({ ttl: 300 });
  });

  test("negative caching (RFC 2308 §5): NXDOMAIN and NODATA kept for min(SOA TTL, SOA MINIMUM), capped; no SOA, not kept", async () => {
    let now = 0;
    const s = await stub((q) => {
      const name = q.questions![0].name;
      if (name === "gone.test") return [reply(q, { rcode: 3, authorities: [soa("test", 300, 30)] })];
      if (name === "empty.test") return [reply(q, { authorities: [soa("test", 86_400, 86_400)] })];
      return [reply(q, { rcode: 3 })];
    });
    const r = new Resolver({ servers: [s.server], now: () => now, maxNegativeTtl: 600 });
    const count = (n: string) => s.queries.filter((q) => q.questions![0].name === n).length;
    expect(await r.lookup("gone.test", "A")).toMatchObject({ status: "nxdomain", ttl: 30 });
    expect(await r.lookup("empty.test", "MX")).toMatchObject({ status: "nodata", ttl: 600 });
    expect(await r.lookup("nosoa.test", "A")).toMatchObject({ status: "nxdomain", ttl: 0 });
    now += 29_000;
    expect(await r.lookup("gone.test", "A")).toMatchObject({ status: "nxdomain", ttl: 1 });
    expect(await r.lookup("empty.test", "MX")).toMatchObject({ status: "nodata" });
    await r.lookup("nosoa.test", "A");
    expect([count("gone.test"), count("empty.test"), count("nosoa.test")]).toEqual([1, 1, 2]);
    now += 2_000;
    await r.lookup("gone.test", "A");
    expect(count("gone.test")).toBe(2);
  });

  test("failures are not cached, and the cache is bounded (least recently used goes first)", async () => {
    let fail = true;
    const s = await stub((q) => [fail ? reply(q, { rcode: 2 }) : reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.7")] })]);
    const r = new Resolver({ servers: [s.server], attempts: 1, cacheEntries: 2 });
    expect(await r.lookup("f.test", "A")).toMatchObject({ status: "servfail", ttl: 0 });
    fail = false;
    expect(await r.lookup("f.test", "A")).toMatchObject({ status: "ok" });
    await r.lookup("g.test", "A");
    await r.lookup("f.test", "A"); // f is now the most recently used
    await r.lookup("h.test", "A"); // evicts g
    expect(r.cacheSize).toBe(2);
    const before = s.queries.length;
    await r.lookup("f.test", "A");
    expect(s.queries.length).toBe(before);
    await r.lookup("g.test", "A");
    expect(s.queries.length).toBe(before + 1);
  });

  test("a lookup budget: the lookup past the limit rejects with LookupLimitError", async () => {
    const s = await stub((q) => [reply(q, { answers: [aRecord(q.questions![0].name, "192.0.2.8")] })]);
    const r = new Resolver({ servers: [s.server] });
    const budget = new LookupBudget(2);
    await r.lookup("b1.test", "A", { budget });
    await r.lookup("b1.test", "A", { budget }); // from the cache, still one lookup
    expect(budget.remaining).toBe(0);
    await expect(r.lookup("b2.test", "A", { budget })).rejects.toThrow(LookupLimitError);
    expect(s.queries.filter((q) => q.questions![0].name === "b2.test")).toHaveLength(0);
  });

  test("node:dns-shaped adapter: records as node gives them, errors with ENOTFOUND/ENODATA/ETIMEOUT/ESERVFAIL", async () => {
    const s = await stub((q) => {
      const { name, type } = q.questions![0];
      if (name === "mx.test" && type === "MX") return [reply(q, { answers: [{ type: "MX", name, ttl: 60, data: { preference: 5, exchange: "mail.mx.test" } }] })];
      if (name === "txt.test" && type === "TXT") return [reply(q, { answers: [{ type: "TXT", name, ttl: 60, data: ["v=DKIM1; p=", "ABC"] }] })];
      // "é" (c3 a9) split across two character-strings of one record.
      if (name === "utf8.test" && type === "TXT") return [reply(q, { answers: [{ type: "TXT", name, ttl: 60, data: [Buffer.from([0x63, 0x61, 0x66, 0xc3]), Buffer.from([0xa9])] }] })];
      if (name === "nomx.test") return [reply(q, {})];
      if (name === "broken.test") return [reply(q, { rcode: 2 })];
      if (name === "slow.test") return [];
      return [reply(q, { rcode: 3 })];
    });
    const a = nodeDnsAdapter(new Resolver({ servers: [s.server], timeoutMs: 200, attempts: 1 }));
    expect(await a.resolveMx("mx.test")).toEqual([{ exchange: "mail.mx.test", priority: 5 }]);
    expect(await a.resolve("mx.test", "MX")).toEqual([{ exchange: "mail.mx.test", priority: 5 }]);
    expect(await a.resolveTxt("txt.test")).toEqual([["v=DKIM1; p=ABC"]]);
    expect(await a.resolve("txt.test", "TXT")).toEqual([["v=DKIM1; p=ABC"]]);
    expect(await a.resolveTxt("utf8.test")).toEqual([["café"]]);
    await expect(a.resolve4("none.test")).rejects.toMatchObject({ code: "ENOTFOUND", hostname: "none.test" });
    await expect(a.resolveMx("nomx.test")).rejects.toMatchObject({ code: "ENODATA" });
    await expect(a.resolve("broken.test", "TXT")).rejects.toMatchObject({ code: "ESERVFAIL" });
    await expect(a.resolve6("slow.test")).rejects.toMatchObject({ code: "ETIMEOUT" });
  });

  test("a name that cannot be encoded is NXDOMAIN without a packet", async () => {
    const s = await stub((q) => [reply(q, { rcode: 3 })]);
    const r = new Resolver({ servers: [s.server] });
    expect(await r.lookup(`${"x".repeat(64)}.test`, "A")).toMatchObject({ status: "nxdomain" });
    expect(await r.lookup("a\r\nb.test", "MX")).toMatchObject({ status: "nxdomain" });
    expect(s.queries).toHaveLength(0);
  });

  test("a label may hold any octet but controls (RFC 2181 §11): a space goes out as it is, and its answer is taken", async () => {
    // An SPF macro expands to such names (RFC 7208 §7.3, the RFC 7208 test suite's macro-mania-in-domain).
    const s = await stub((q) => [reply(q, { answers: [{ type: "TXT", name: q.questions![0]!.name, ttl: 60, data: ["v=spf1 +all"] }] })]);
    const r = new Resolver({ servers: [s.server] });
    expect(await r.lookup("macro%percent  space%20url-space.example.com", "TXT")).toMatchObject({ status: "ok", records: ["v=spf1 +all"] });
    expect(s.queries).toHaveLength(1);
  });
});

describe("servers and names", () => {
  test("server strings: ip, ip:port, [ipv6]:port and a bare IPv6 address", () => {
    expect(parseServer("127.0.0.1")).toEqual({ host: "127.0.0.1", port: 53 });
    expect(parseServer("127.0.0.1:5353")).toEqual({ host: "127.0.0.1", port: 5353 });
    expect(parseServer("::1")).toEqual({ host: "::1", port: 53 });
    expect(parseServer("[::1]:5353")).toEqual({ host: "::1", port: 5353 });
    expect(parseServer("ns.example.test")).toBeNull();
    expect(parseServer("127.0.0.1:0")).toBeNull();
    expect(() => resolveServers(["nope"])).toThrow(/not a DNS server address/);
  });

  test("resolv.conf: nameserver lines in order (IPv4 and IPv6, at most three), else 127.0.0.1:53", () => {
    const text = "# comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n  nameserver fe80::1%eth0\nnameserver 192.0.2.54\noptions edns0\n";
    expect(parseResolvConf(text)).toEqual([
      { host: "192.0.2.53", port: 53 },
      { host: "2001:db8::53", port: 53 },
      { host: "fe80::1%eth0", port: 53 },
    ]);
    expect(resolveServers([], "/nonexistent/resolv.conf")).toEqual([{ host: "127.0.0.1", port: 53 }]);
    expect(resolveServers(["127.0.0.1:5353"])).toEqual([{ host: "127.0.0.1", port: 5353 }]);
  });

  test("reverse names for PTR and DNS lists", () => {
    expect(reverseName("192.0.2.1")).toBe("1.2.0.192.in-addr.arpa");
    expect(reverseName("192.0.2.1", "zen.example.test")).toBe("1.2.0.192.zen.example.test");
    expect(reverseName("2001:db8::1")).toBe("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    expect(reverseName("not-an-ip")).toBeNull();
  });
});
