/**
 * Routing: the transport map, the smart host, then MX through a real DNS server (dnsmasq on loopback), asked
 * through our dns/ resolver handed to the Router (its DnsLookup port); garbage and silent servers through small UDP
 * servers of our own.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { havePeer, peerTest } from "../../../test/helpers/peers.ts";
import { startDnsmasq, type Dnsmasq } from "../../../test/helpers/dnsmasq.ts";
import { reply, startDnsStub } from "../../../test/helpers/dns-stub.ts";
import { Resolver } from "../../dns/index.ts";
import { orderMx, Router, splitHostPort } from "./index.ts";
import type { RouteSettings } from "./index.ts";

const base = (over: Partial<RouteSettings> = {}): RouteSettings => ({
  routes: {},
  smarthost: "",
  smarthostTls: "starttls",
  mxPort: 2525,
  dnsServers: [],
  ...over,
});

describe("orderMx", () => {
  test("sorts by preference and shuffles only among equal preferences", () => {
    const recs = [
      { exchange: "c", priority: 20 },
      { exchange: "a1", priority: 10 },
      { exchange: "a2", priority: 10 },
      { exchange: "a3", priority: 10 },
      { exchange: "z", priority: 5 },
    ];
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const o = orderMx(recs).map((r) => r.exchange);
      expect(o[0]).toBe("z");
      expect(o[4]).toBe("c");
      expect(o.slice(1, 4).sort()).toEqual(["a1", "a2", "a3"]);
      seen.add(o.slice(1, 4).join(","));
    }
    expect(seen.size).toBeGreaterThan(3); // random among equals (6 orders possible)
  });

  test("splitHostPort accepts host:port and [v6]:port only", () => {
    expect(splitHostPort("127.0.0.1:25")).toEqual({ host: "127.0.0.1", port: 25 });
    expect(splitHostPort("[::1]:2525")).toEqual({ host: "::1", port: 2525 });
    expect(splitHostPort("host")).toBeNull();
    expect(splitHostPort("host:0")).toBeNull();
  });
});

describe("Router without DNS", () => {
  test("relay.routes wins over the smart host, which wins over MX", async () => {
    const r = new Router(base({ routes: { "far.test": "127.0.0.1:2600" }, smarthost: "smart.test:587" }));
    expect(await r.route("FAR.test")).toMatchObject({ kind: "hops", key: "route:127.0.0.1:2600", tls: "opportunistic", smarthost: false, hops: [{ name: "127.0.0.1", addresses: ["127.0.0.1"], port: 2600 }] });
    expect(await r.route("other.test")).toMatchObject({ kind: "hops", key: "smarthost:smart.test:587", tls: "required", smarthost: true, hops: [{ name: "smart.test", addresses: [], port: 587 }] });
    const implicit = new Router(base({ smarthost: "smart.test:465", smarthostTls: "implicit" }));
    expect(await implicit.route("x.test")).toMatchObject({ tls: "implicit" });
  });
});

describe("Router.fixedRoute (config-only destinations, computed once)", () => {
  test("answers relay.routes and the smart host without DNS, the same object each time; null when MX decides", async () => {
    const r = new Router(base({ routes: { "far.test": "127.0.0.1:2600", "bad.test": "nope" } }));
    const first = r.fixedRoute("far.test");
    expect(first).toMatchObject({ kind: "hops", key: "route:127.0.0.1:2600" });
    expect(r.fixedRoute("far.test")).toBe(first);
    expect(await r.route("FAR.TEST")).toBe(first);
    expect(r.fixedRoute("bad.test")).toEqual({ kind: "deferred", reply: expect.stringMatching(/^451 4\.3\.5 bad relay\.routes entry/) });
    expect(r.fixedRoute("elsewhere.test")).toBeNull();
    expect(r.fixedRoute("constructor")).toBeNull(); // a domain named like an Object.prototype key is not a route
    const smart = new Router(base({ smarthost: "smart.test:587" }));
    expect(smart.fixedRoute("any.test")).toMatchObject({ kind: "hops", key: "smarthost:smart.test:587", smarthost: true });
  });
});

describe("Router with MX records from dnsmasq", () => {
  let dns: Dnsmasq | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    dns = await startDnsmasq({
      zones: ["test"],
      mx: ["two.test,mx1.two.test,10", "two.test,mx2.two.test,20", "null.test,.,0"],
      hosts: ["mx1.two.test,127.0.0.2", "mx2.two.test,127.0.0.3", "amx.test,127.0.0.4", "v6.test,::1"],
      txt: ["textonly.test,v=spf1 -all"],
      extra: ["--mx-host=nohost.test,gone.nohost.test,10"],
    });
  });
  afterAll(async () => {
    await dns?.stop();
  });
  const router = () => new Router(base(), new Resolver({ servers: [dns!.server], timeoutMs: 1000 }));

  peerTest("dnsmasq", "MX hosts by preference, each with its addresses, on relay.mx_port", async () => {
    expect(await router().route("two.test")).toEqual({
      kind: "hops",
      key: "mx:two.test",
      tls: "opportunistic",
      smarthost: false,
      hops: [
        { name: "mx1.two.test", addresses: ["127.0.0.2"], port: 2525 },
        { name: "mx2.two.test", addresses: ["127.0.0.3"], port: 2525 },
      ],
    });
  });

  peerTest("dnsmasq", "no MX: the domain's own A/AAAA is the implicit MX (RFC 5321 §5.1)", async () => {
    expect(await router().route("amx.test")).toMatchObject({ kind: "hops", hops: [{ name: "amx.test", addresses: ["127.0.0.4"] }] });
    expect(await router().route("v6.test")).toMatchObject({ kind: "hops", hops: [{ name: "v6.test", addresses: ["::1"] }] });
  });

  peerTest("dnsmasq", "null MX (RFC 7505) fails at once with 556 5.1.10; no such domain fails 5.1.2", async () => {
    expect(await router().route("null.test")).toEqual({ kind: "failed", reply: expect.stringMatching(/^556 5\.1\.10 /) });
    expect(await router().route("nowhere.test")).toEqual({ kind: "failed", reply: expect.stringMatching(/^550 5\.1\.2 /) });
  });

  peerTest("dnsmasq", "NXDOMAIN and NODATA are told apart: a domain with neither MX nor address fails, named as such", async () => {
    expect(await router().route("nowhere.test")).toEqual({ kind: "failed", reply: expect.stringMatching(/^550 5\.1\.2 nowhere\.test does not exist/) });
    expect(await router().route("textonly.test")).toEqual({ kind: "failed", reply: expect.stringMatching(/^550 5\.1\.2 textonly\.test has no MX and no A\/AAAA/) });
    expect(await router().route("nohost.test")).toEqual({ kind: "failed", reply: expect.stringMatching(/^550 5\.4\.4 /) });
  });

  peerTest("dnsmasq", "a dead first DNS server is skipped: the next one routes", async () => {
    const silent = await startDnsStub(() => []);
    try {
      const r = new Router(base(), new Resolver({ servers: [silent.server, dns!.server], timeoutMs: 200 }));
      expect(await r.route("two.test")).toMatchObject({ kind: "hops", key: "mx:two.test" });
    } finally {
      await silent.stop();
    }
  });

  peerTest("dnsmasq", "a DNS server that does not answer is a temporary failure", async () => {
    const dead = new Router(base({ dnsServers: ["127.0.0.1:9"], dnsTimeoutMs: 200 }));
    const d = await dead.route("two.test");
    expect(d).toEqual({ kind: "deferred", reply: expect.stringMatching(/^451 4\.4\.3 DNS lookup of MX of two\.test failed/) });
  });
});

describe("Router with a broken DNS server: mail is deferred, never bounced", () => {
  test("garbage, SERVFAIL and silence for MX or for the hosts' addresses all defer with 451 4.4.3", async () => {
    // MX answers are fine (mx.bad.test for every domain), but the address lookups of the MX host get `broken`.
    let broken: "garbage" | "servfail" | "silent" | "mx" = "mx";
    const s = await startDnsStub((q, raw) => {
      const { name, type } = q.questions![0];
      const garbage = Buffer.concat([raw.subarray(0, 2), Buffer.from("\xff\xfegarbage-not-dns")]);
      if (type === "MX" && broken !== "mx") {
        return [reply(q, { answers: [{ type: "MX", name, ttl: 0, data: { preference: 10, exchange: "mx.bad.test" } }] })];
      }
      if (broken === "garbage" || broken === "mx") return [garbage];
      if (broken === "servfail") return [reply(q, { rcode: 2 })];
      return [];
    });
    try {
      const router = () => new Router(base(), new Resolver({ servers: [s.server], timeoutMs: 200, attempts: 1 }));
      expect(await router().route("a.test")).toEqual({ kind: "deferred", reply: expect.stringMatching(/^451 4\.4\.3 DNS lookup of MX of a\.test failed: servfail/) });
      for (const mode of ["garbage", "servfail", "silent"] as const) {
        broken = mode;
        expect(await router().route("b.test")).toEqual({ kind: "deferred", reply: expect.stringMatching(/^451 4\.4\.3 DNS lookup of the addresses of the mail hosts of b\.test failed/) });
      }
    } finally {
      await s.stop();
    }
  });
});
