/**
 * Which hops the Router puts under DANE or MTA-STS (RFC 7672 §2.2, RFC 8461 §4), decided on the AD bits and
 * statuses of the answers. The answers come from a table (the DnsLookup port): what is under test is the decision,
 * not DNS; the same decisions through a real validating unbound are in test/e2e/dane.test.ts.
 */
import { describe, expect, test } from "vitest";
import type { DnsLookup, DnsResult, DnsStatus, RecordType } from "../../dns/index.ts";
import { Router } from "./index.ts";
import type { RouteSettings, StsPolicy, StsSource } from "./index.ts";

type Answer = { status?: DnsStatus; records?: unknown[]; ad?: boolean };

function table(entries: Record<string, Answer>): DnsLookup {
  return {
    async lookup<T extends RecordType>(name: string, type: T): Promise<DnsResult<T>> {
      const a = entries[`${name} ${type}`];
      const status: DnsStatus = a?.status ?? (a === undefined ? "nodata" : "ok");
      return { status, records: (status === "ok" ? a?.records ?? [] : []) as DnsResult<T>["records"], ad: a?.ad ?? false, ttl: 60, cnames: [] };
    },
  };
}

const TLSA = { usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(32).fill(7) };
const settings: RouteSettings = { routes: {}, smarthost: "", smarthostTls: "starttls", mxPort: 2525, dnsServers: [], dane: true };

function zone(o: { mxAd: boolean; aAd: boolean; tlsa?: Answer }): DnsLookup {
  return table({
    "d.test MX": { records: [{ exchange: "mx.d.test", preference: 10 }], ad: o.mxAd },
    "mx.d.test A": { records: ["192.0.2.1"], ad: o.aAd },
    "mx.d.test AAAA": { status: "nodata", ad: o.aAd },
    ...(o.tlsa ? { "_2525._tcp.mx.d.test TLSA": o.tlsa } : {}),
  });
}

const sts = (p: StsPolicy | null): StsSource => ({ policy: async () => p });

describe("Router: DANE and MTA-STS decisions", () => {
  test("MX, address and TLSA all validated: a DANE hop with its usable records, at the port dialled", async () => {
    const d = await new Router(settings, zone({ mxAd: true, aAd: true, tlsa: { records: [TLSA, { ...TLSA, usage: 1 }], ad: true } })).route("d.test");
    expect(d).toMatchObject({ kind: "hops", key: "mx:d.test:dane", policy: "dane", hops: [{ name: "mx.d.test", policy: { kind: "dane", tlsa: [TLSA] } }] });
  });

  test("an insecure MX answer, an insecure address answer or an insecure TLSA answer: no DANE", async () => {
    for (const z of [
      zone({ mxAd: false, aAd: true, tlsa: { records: [TLSA], ad: true } }),
      zone({ mxAd: true, aAd: false, tlsa: { records: [TLSA], ad: true } }),
      zone({ mxAd: true, aAd: true, tlsa: { records: [TLSA], ad: false } }),
    ]) {
      const d = await new Router(settings, z).route("d.test");
      expect(d).toMatchObject({ kind: "hops", key: "mx:d.test" });
      expect(d.kind === "hops" && d.hops[0].policy).toBeUndefined();
    }
  });

  test("no TLSA (NXDOMAIN or NODATA) for a secure host: opportunistic", async () => {
    for (const tlsa of [{ status: "nxdomain" as const, ad: true }, { status: "nodata" as const, ad: true }]) {
      const d = await new Router(settings, zone({ mxAd: true, aAd: true, tlsa })).route("d.test");
      expect(d).toMatchObject({ kind: "hops", key: "mx:d.test" });
    }
  });

  test("a failed or bogus TLSA lookup (SERVFAIL, timeout): the host is not used; with none left, 4.7.5", async () => {
    for (const status of ["servfail", "timeout"] as const) {
      const d = await new Router(settings, zone({ mxAd: true, aAd: true, tlsa: { status } })).route("d.test");
      expect(d).toMatchObject({ kind: "deferred", code: 451, enhanced: "4.7.5", policy: "dane" });
    }
  });

  test("relay.dane off: TLSA is not even asked", async () => {
    const d = await new Router({ ...settings, dane: false }, zone({ mxAd: true, aAd: true, tlsa: { records: [TLSA], ad: true } })).route("d.test");
    expect(d).toMatchObject({ kind: "hops", key: "mx:d.test" });
  });

  test("MTA-STS enforce: only matching MX hosts, marked; none matching: 4.7.5; testing: all hosts, unmarked", async () => {
    const z = zone({ mxAd: false, aAd: false });
    const enforce = await new Router(settings, z, sts({ mode: "enforce", mx: ["*.d.test"], maxAge: 60 })).route("d.test");
    expect(enforce).toMatchObject({ kind: "hops", policy: "mta-sts", hops: [{ name: "mx.d.test", policy: { kind: "mta-sts" } }] });
    const none = await new Router(settings, z, sts({ mode: "enforce", mx: ["other.d.test"], maxAge: 60 })).route("d.test");
    expect(none).toMatchObject({ kind: "deferred", enhanced: "4.7.5", policy: "mta-sts" });
    const testing = await new Router(settings, z, sts({ mode: "testing", mx: ["other.d.test"], maxAge: 60 })).route("d.test");
    expect(testing).toMatchObject({ kind: "hops", policy: "mta-sts-testing" });
    expect(testing.kind === "hops" && testing.hops[0].policy).toBeUndefined();
  });

  test("DANE wins over MTA-STS; TLS-Required: No (ignorePolicy) consults neither", async () => {
    const z = zone({ mxAd: true, aAd: true, tlsa: { records: [TLSA], ad: true } });
    const r = new Router(settings, z, sts({ mode: "enforce", mx: ["nomatch.test"], maxAge: 60 }));
    expect(await r.route("d.test")).toMatchObject({ kind: "hops", policy: "dane" });
    const relaxed = await r.route("d.test", true);
    expect(relaxed).toMatchObject({ kind: "hops", key: "mx:d.test" });
    expect(relaxed.kind === "hops" && relaxed.hops[0].policy).toBeUndefined();
  });

  test("a policy announced but not fetched: delivered as without one, the destination carries the TLS-RPT failure", async () => {
    const source: StsSource = { policy: async () => null, lastError: () => "sts-policy-fetch-error" };
    const d = await new Router(settings, zone({ mxAd: false, aAd: false }), source).route("d.test");
    expect(d).toMatchObject({ kind: "hops", key: "mx:d.test", reportFailure: "sts-policy-fetch-error", report: { domain: "d.test", type: "sts" } });
    expect(d.kind === "hops" && d.policy).toBeUndefined();
  });
});
