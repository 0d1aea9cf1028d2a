/**
 * The defence stages (src/inbound) in the in-process session tier: DNS lists against a scripted lookup port,
 * pregreet, greylisting and rate limits on a manual clock. What a real client, dnsmasq, Postfix and restarts do is
 * in test/e2e/defence.test.ts.
 */
import { describe, expect, test } from "vitest";
import {
  classify,
  DnsLists,
  dnsblStage,
  GreylistStore,
  greylistStage,
  pregreetStage,
  RateLimiter,
  rateLimitStage,
  type DefenceDeps,
  type DefenceReason,
  type DefenceSettings,
  type FleetCounters,
  type ListLookup,
  type ListLookupStatus,
  type RateLimitEntry,
} from "../../src/inbound/index.ts";
import type { SessionView, Stage } from "../../src/mail/index.ts";
import { ManualClock, RecordingLog, sessionTier, type TierOptions, type TierReply } from "../session/harness.ts";

const codes = (rs: TierReply[]): string[] => rs.map((r) => (r.enhanced ? `${r.code} ${r.enhanced}` : `${r.code}`));
const MINUTE = 60_000;

type Answer = { status: ListLookupStatus; addresses: readonly string[] } | "never";

/** A lookup port answering from a table (name → answer); unknown names are NXDOMAIN. Records every name asked. */
function scripted(table: Record<string, Answer>): ListLookup & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookupA(name) {
      asked.push(name);
      const a = table[name] ?? { status: "nxdomain", addresses: [] };
      return a === "never" ? new Promise(() => {}) : Promise.resolve({ status: a.status, addresses: [...a.addresses] });
    },
  };
}

interface Rig {
  deps: DefenceDeps;
  clock: ManualClock;
  log: RecordingLog;
  reports: Array<{ reason: DefenceReason; fields: Record<string, unknown> }>;
  settings: DefenceSettings;
}

function rig(settings: Partial<DefenceSettings>, lookup: ListLookup, trusted: (v: SessionView) => boolean = () => false): Rig {
  const clock = new ManualClock(false);
  const log = new RecordingLog();
  const reports: Rig["reports"] = [];
  const s: DefenceSettings = { dnsbl: [], dnswl: [], pregreetMs: 0, greylist: false, greylistDelayMs: 5 * MINUTE, ...settings };
  const lists = new DnsLists({ lookup, sleep: (ms) => clock.delay(ms), budgetMs: 2000, log });
  const deps: DefenceDeps = { settings: () => s, trusted, lists, report: (reason, fields) => reports.push({ reason, fields }) };
  return { deps, clock, log, reports, settings: s };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

async function transaction(stages: Stage[], o: TierOptions & { from?: string; to?: string[] } = {}) {
  const t = sessionTier({ stages, ...o });
  await tick();
  const rcpts = o.to ?? ["alice@example.test"];
  t.send(`EHLO client.test\r\nMAIL FROM:<${o.from ?? "s@remote.test"}>\r\n` + rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join(""));
  await t.settle();
  await t.settle();
  return t;
}

describe("DNS list answers (RFC 5782 §2.3)", () => {
  const ok = (...addresses: string[]) => ({ status: "ok" as const, addresses });
  test("blocklist: 127.0.0.2–127.0.0.255 lists; 127.0.0.1 and other addresses do not; 127.255.255.0/24 is a refusal", () => {
    expect(classify("bl.test", false, ok("127.0.0.2"))).toEqual({ zone: "bl.test", kind: "listed", code: "127.0.0.2" });
    expect(classify("bl.test", false, ok("127.0.0.255")).kind).toBe("listed");
    expect(classify("bl.test", false, ok("127.0.0.1")).kind).toBe("clean");
    expect(classify("bl.test", false, ok("127.0.1.2")).kind).toBe("clean");
    expect(classify("bl.test", false, ok("10.0.0.2")).kind).toBe("clean");
    expect(classify("bl.test", false, ok("127.255.255.254"))).toEqual({ zone: "bl.test", kind: "refused", code: "127.255.255.254" });
    // A refusal next to a real listing code: the listing wins.
    expect(classify("bl.test", false, ok("127.255.255.252", "127.0.0.4")).kind).toBe("listed");
  });
  test("allowlist: any 127/8 answer but 127.0.0.1 (list.dnswl.org's 127.0.<category>.<trust>)", () => {
    expect(classify("wl.test", true, ok("127.0.15.0")).kind).toBe("listed");
    expect(classify("wl.test", true, ok("127.0.0.1")).kind).toBe("clean");
    expect(classify("wl.test", true, ok("127.255.255.255")).kind).toBe("refused");
  });
  test("no such name / no A is clean; SERVFAIL and timeout fail (open)", () => {
    expect(classify("bl.test", false, { status: "nxdomain", addresses: [] }).kind).toBe("clean");
    expect(classify("bl.test", false, { status: "nodata", addresses: [] }).kind).toBe("clean");
    expect(classify("bl.test", false, { status: "servfail", addresses: [] })).toEqual({ zone: "bl.test", kind: "failed", status: "servfail" });
    expect(classify("bl.test", false, { status: "timeout", addresses: [] }).kind).toBe("failed");
  });
});

describe("DnsLists: one lookup per zone per connection, in parallel, within the budget", () => {
  test("names are the reversed octets / nibbles under each zone; an IPv4-mapped address is its IPv4 address", async () => {
    const lookup = scripted({});
    const r = rig({}, lookup);
    await r.deps.lists.check("::ffff:192.0.2.10", ["a.test", "b.test"], ["w.test"]);
    await r.deps.lists.check("2001:db8::1", ["a.test"], []);
    expect(lookup.asked).toEqual([
      "10.2.0.192.a.test",
      "10.2.0.192.b.test",
      "10.2.0.192.w.test",
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.a.test",
    ]);
  });
  test("a zone that never answers is given up at the budget: not listed, logged; the others still count", async () => {
    const lookup = scripted({ "1.0.0.127.slow.test": "never", "1.0.0.127.bl.test": { status: "ok", addresses: ["127.0.0.3"] } });
    const r = rig({}, lookup);
    let done: unknown = null;
    void r.deps.lists.check("127.0.0.1", ["slow.test", "bl.test"], []).then((x) => (done = x));
    await tick();
    expect(done).toBeNull(); // waiting for slow.test
    r.clock.advance(2000);
    await tick();
    expect(done).toEqual({ blockedBy: { zone: "bl.test", code: "127.0.0.3" }, allowedBy: null });
    expect(r.log.named("defence.dnsl_failed").map((e) => e.fields)).toEqual([
      { client: "127.0.0.1", zone: "slow.test", status: "timeout", note: "accepted (fail open)" },
    ]);
  });
  test("a refusing list (127.255.255.254) is logged as an error, never a listing", async () => {
    const r = rig({}, scripted({ "1.0.0.127.bl.test": { status: "ok", addresses: ["127.255.255.254"] } }));
    expect(await r.deps.lists.check("127.0.0.1", ["bl.test"], [])).toEqual({ blockedBy: null, allowedBy: null });
    expect(r.log.events.filter((e) => e.level === "error").map((e) => e.event)).toEqual(["defence.dnsl_refused"]);
  });
});

const LISTED = { "1.0.0.127.bl.test": { status: "ok", addresses: ["127.0.0.2"] } } as const;

describe("DNSBL stage", () => {
  test("a listed client gets 554 5.7.1 at RCPT naming the zone; MAIL is fine; reported with the zone", async () => {
    const r = rig({ dnsbl: ["clean.test", "bl.test"] }, scripted(LISTED));
    const t = await transaction([dnsblStage(r.deps)]);
    const rs = t.replies();
    expect(codes(rs)).toEqual(["220", "250", "250 2.1.0", "554 5.7.1"]);
    expect(rs[3]!.lines[0]).toContain("bl.test");
    expect(rs[3]!.lines[0]).not.toContain("clean.test");
    expect(r.reports).toEqual([
      { reason: "dnsbl", fields: { client: "127.0.0.1", zone: "bl.test", answer: "127.0.0.2", from: "s@remote.test", to: "alice@example.test" } },
    ]);
  });
  test("a clean client is accepted; the lookup was made once for the whole connection", async () => {
    const lookup = scripted(LISTED);
    const r = rig({ dnsbl: ["bl.test"] }, lookup);
    const t = await transaction([dnsblStage(r.deps)], { remoteAddress: "127.0.0.9", to: ["alice@example.test", "bob@example.test"] });
    expect(codes(t.replies())).toEqual(["220", "250", "250 2.1.0", "250 2.1.5", "250 2.1.5"]);
    expect(lookup.asked).toEqual(["9.0.0.127.bl.test"]);
  });
  test("DNSWL wins over DNSBL; trusted (relay.networks) and authenticated sessions are never refused", async () => {
    const both = { ...LISTED, "1.0.0.127.wl.test": { status: "ok" as const, addresses: ["127.0.2.1"] } };
    const r1 = rig({ dnsbl: ["bl.test"], dnswl: ["wl.test"] }, scripted(both));
    expect(codes((await transaction([dnsblStage(r1.deps)])).replies()).at(-1)).toBe("250 2.1.5");

    const lookup = scripted(LISTED);
    const r2 = rig({ dnsbl: ["bl.test"] }, lookup, (v) => v.clientAddress === "127.0.0.1");
    expect(codes((await transaction([dnsblStage(r2.deps)])).replies()).at(-1)).toBe("250 2.1.5");
    expect(lookup.asked).toEqual([]); // a trusted client is not even looked up

    const r3 = rig({ dnsbl: ["bl.test"] }, scripted(LISTED));
    const t = sessionTier({ stages: [dnsblStage(r3.deps)] });
    t.send("EHLO c.test\r\nSTARTTLS\r\n");
    await t.settle();
    t.send(`EHLO c.test\r\nAUTH PLAIN ${btoa("\0alice@example.test\0secret-alice")}\r\n`);
    await t.settle();
    t.send("MAIL FROM:<alice@example.test>\r\nRCPT TO:<someone@remote.test>\r\n");
    await t.settle();
    expect(codes(t.replies()).slice(-3)).toEqual(["235 2.7.0", "250 2.1.0", "250 2.1.5"]);
    expect(r3.reports).toEqual([]);
  });
});

describe("pregreet stage", () => {
  test("a client that talks before the banner gets 554 5.5.1 and is closed", async () => {
    const r = rig({ pregreetMs: 3000 }, scripted({}));
    const t = sessionTier({ stages: [pregreetStage(r.deps, (ms) => r.clock.delay(ms))] });
    expect(t.replies()).toEqual([]); // no banner yet
    t.send("EHLO eager.test\r\n");
    r.clock.advance(2999);
    await t.settle();
    expect(t.replies()).toEqual([]);
    r.clock.advance(1);
    await t.settle();
    expect(codes(t.replies())).toEqual(["554 5.5.1"]);
    expect(t.closed).toBe(true);
    expect(r.reports.map((x) => x.reason)).toEqual(["pregreet"]);
    expect(r.clock.delays).toEqual([3000]); // one timer per connection
  });
  test("a client that waits gets the banner after pregreet_ms and a normal session", async () => {
    const r = rig({ pregreetMs: 3000 }, scripted({}));
    const t = sessionTier({ stages: [pregreetStage(r.deps, (ms) => r.clock.delay(ms))] });
    r.clock.advance(3000);
    await t.settle();
    expect(codes(t.replies())).toEqual(["220"]);
    t.send("EHLO patient.test\r\n");
    expect(codes(t.replies())).toEqual(["250"]);
    expect(r.reports).toEqual([]);
  });
  test("a DNSWL-listed client is greeted as soon as the allowlist answers, and may even talk first", async () => {
    const r = rig({ pregreetMs: 3000, dnswl: ["wl.test"] }, scripted({ "1.0.0.127.wl.test": { status: "ok", addresses: ["127.0.0.2"] } }));
    const t = sessionTier({ stages: [pregreetStage(r.deps, (ms) => r.clock.delay(ms))] });
    await t.settle();
    expect(codes(t.replies())).toEqual(["220"]);
    const t2 = sessionTier({ stages: [pregreetStage(r.deps, (ms) => r.clock.delay(ms))], remoteAddress: "127.0.0.1" });
    t2.send("EHLO eager.test\r\n");
    await t2.settle();
    expect(codes(t2.replies())).toEqual(["220", "250"]);
  });
  test("a client that hangs up during the wait: nothing is written afterwards, nothing is reported", async () => {
    const r = rig({ pregreetMs: 3000 }, scripted({}));
    const t = sessionTier({ stages: [pregreetStage(r.deps, (ms) => r.clock.delay(ms))] });
    t.send("EHLO eager.test\r\n");
    t.hangUp();
    await t.settle();
    r.clock.advance(3000);
    await t.settle();
    expect(t.output).toBe("");
    expect(t.gone).toBe(true);
    expect(r.reports).toEqual([]);
  });
  test("trusted clients and pregreet_ms = 0 skip it", async () => {
    const r = rig({ pregreetMs: 3000 }, scripted({}), () => true);
    expect(codes(sessionTier({ stages: [pregreetStage(r.deps, (ms) => r.clock.delay(ms))] }).replies())).toEqual(["220"]);
    const r0 = rig({ pregreetMs: 0 }, scripted({}));
    expect(codes(sessionTier({ stages: [pregreetStage(r0.deps, (ms) => r0.clock.delay(ms))] }).replies())).toEqual(["220"]);
  });
});

describe("greylisting", () => {
  test("store: defer, still deferred before the delay, passes after it within 24 h, then known for 35 days", () => {
    const g = new GreylistStore();
    const k = "192.0.2.0/24 a@b.test c@d.test";
    expect(g.attempt(k, 0, 5 * MINUTE)).toBe("defer");
    expect(g.attempt(k, 5 * MINUTE - 1, 5 * MINUTE)).toBe("defer");
    expect(g.attempt(k, 5 * MINUTE, 5 * MINUTE)).toBe("pass");
    expect(g.attempt(k, 34 * 86_400_000, 5 * MINUTE)).toBe("pass"); // renewed: known until day 69
    expect(g.attempt(k, 68 * 86_400_000, 5 * MINUTE)).toBe("pass");
    expect(g.attempt(k, 68 * 86_400_000 + 35 * 86_400_000, 5 * MINUTE)).toBe("defer"); // expired: first seen again
    const late = "192.0.2.0/24 x@b.test c@d.test";
    expect(g.attempt(late, 0, 5 * MINUTE)).toBe("defer");
    expect(g.attempt(late, 86_400_000, 5 * MINUTE)).toBe("defer"); // a retry after 24 h starts over
    expect(g.attempt(late, 86_400_000 + 5 * MINUTE, 5 * MINUTE)).toBe("pass");
  });
  test("store: serialize/load keeps live triples and drops expired ones; the cap holds", () => {
    const T = Date.UTC(2026, 0, 1);
    const g = new GreylistStore();
    g.attempt('n "quoted local"@x.test y@z.test', T, 1000);
    g.attempt("n a@x.test y@z.test", T, 1000);
    g.attempt("n a@x.test y@z.test", T + 2000, 1000);
    const text = g.serialize(T + 3000);
    const h = new GreylistStore();
    expect(h.load(text + "garbage line\n", T + 3000)).toEqual({ loaded: 2, bad: 1 });
    expect(h.attempt("n a@x.test y@z.test", T + 4000, 1000)).toBe("pass");
    expect(h.attempt('n "quoted local"@x.test y@z.test', T + 4000, 1000)).toBe("pass");
    // Two days on, the pending triple (24 h window) is gone; the known one (35 days) is kept.
    expect(new GreylistStore().load(g.serialize(T + 2 * 86_400_000), T + 2 * 86_400_000).loaded).toBe(1);
    const small = new GreylistStore(100);
    for (let i = 0; i < 1000; i++) small.attempt(`k${i}`, i, 1000);
    expect(small.size).toBeLessThanOrEqual(100);
  });
  test("stage: 451 4.7.1 at RCPT, then the retry after the delay from another host of the /24 passes", async () => {
    const r = rig({ greylist: true, greylistDelayMs: 5 * MINUTE }, scripted({}));
    const store = new GreylistStore();
    const stage = greylistStage(r.deps, store, () => r.clock.now());
    const t = await transaction([stage], { remoteAddress: "192.0.2.10", from: "Sender@Remote.test" });
    expect(codes(t.replies()).at(-1)).toBe("451 4.7.1");
    expect(r.reports[0]).toEqual({
      reason: "greylist",
      fields: { client: "192.0.2.10", network: "192.0.2.0/24", from: "Sender@Remote.test", to: "alice@example.test" },
    });
    r.clock.advance(5 * MINUTE);
    const t2 = await transaction([stage], { remoteAddress: "192.0.2.77", from: "sender@remote.test", to: ["Alice@example.test"] });
    expect(codes(t2.replies()).at(-1)).toBe("250 2.1.5");
    const t3 = await transaction([stage], { remoteAddress: "198.51.100.1", from: "sender@remote.test" });
    expect(codes(t3.replies()).at(-1)).toBe("451 4.7.1"); // another network is another triple
    const t6 = await transaction([stage], { remoteAddress: "2001:db8:1:2::5" });
    expect(codes(t6.replies()).at(-1)).toBe("451 4.7.1");
    expect(r.reports.at(-1)!.fields.network).toBe("2001:0db8:0001:0002::/64");
  });
  test("stage: trusted, authenticated and DNSWL-listed clients are not greylisted", async () => {
    const r = rig({ greylist: true, dnswl: ["wl.test"] }, scripted({ "1.0.0.127.wl.test": { status: "ok", addresses: ["127.0.0.2"] } }));
    const stage = greylistStage(r.deps, new GreylistStore(), () => r.clock.now());
    expect(codes((await transaction([stage])).replies()).at(-1)).toBe("250 2.1.5"); // DNSWL
    expect(codes((await transaction([stage], { remoteAddress: "127.0.0.2" })).replies()).at(-1)).toBe("451 4.7.1");
    const trusted = rig({ greylist: true }, scripted({}), () => true);
    expect(codes((await transaction([greylistStage(trusted.deps, new GreylistStore(), () => 0)])).replies()).at(-1)).toBe("250 2.1.5");
  });
});

describe("rate limits", () => {
  test("GCRA: exactly N pass at once, then one per window/N", () => {
    const l = new RateLimiter({ count: 7, windowMs: MINUTE });
    let passed = 0;
    for (let i = 0; i < 20; i++) if (l.take("k", 1000)) passed++;
    expect(passed).toBe(7);
    expect(l.take("k", 1000 + MINUTE / 7 - 1)).toBe(false);
    expect(l.take("k", 1000 + MINUTE / 7)).toBe(true);
    expect(l.take("other", 1000)).toBe(true);
    // After a whole idle window the bucket is full again.
    for (let i = 0; i < 7; i++) expect(l.take("k", 1000 + 2 * MINUTE)).toBe(true);
    expect(l.take("k", 1000 + 2 * MINUTE)).toBe(false);
  });
  test("the key cap holds; idle keys are evicted before busy ones", () => {
    const l = new RateLimiter({ count: 2, windowMs: MINUTE }, 100);
    l.take("busy", 0);
    l.take("busy", 0); // bucket empty: full again at 60 000
    for (let i = 0; i < 99; i++) l.take(`idle${i}`, 0); // one of two used: full again at 30 000
    // At 40 000 new keys push out idle keys and keep "busy", although it is the oldest entry.
    for (let i = 0; i < 50; i++) l.take(`new${i}`, 40_000);
    expect(l.size).toBe(100);
    expect(l.take("busy", 40_000)).toBe(true); // the token refilled since 0 (30 s per message)
    expect(l.take("busy", 40_000)).toBe(false); // were it evicted, a fresh bucket would allow this one too
  });

  const entry = (key: RateLimitEntry["key"], count: number): RateLimitEntry => ({
    key,
    rate: `${count}/1m`,
    limiter: new RateLimiter({ count, windowMs: MINUTE }),
  });
  test("stage: MAIL FROM over an ip limit gets 451 4.7.1; another ip is unaffected; recipient limits act at RCPT", async () => {
    const reports: Array<{ reason: DefenceReason; fields: Record<string, unknown> }> = [];
    const clock = new ManualClock(false);
    const limits = [entry("ip", 2), entry("recipient", 2)];
    const stage = rateLimitStage(() => limits, (reason, fields) => reports.push({ reason, fields }), () => clock.now());
    const t = sessionTier({ stages: [stage], remoteAddress: "192.0.2.1" });
    t.send("EHLO c.test\r\n");
    for (let i = 0; i < 3; i++) t.send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRSET\r\n");
    expect(codes(t.replies()).slice(2)).toEqual([
      "250 2.1.0", "250 2.1.5", "250 2.0.0",
      "250 2.1.0", "250 2.1.5", "250 2.0.0",
      "451 4.7.1", "503 5.5.1", "250 2.0.0",
    ]);
    expect(reports).toEqual([
      { reason: "rate_limit", fields: { client: "192.0.2.1", key: "ip", value: "192.0.2.1", rate: "2/1m", from: "s@remote.test" } },
    ]);
    const u = sessionTier({ stages: [stage], remoteAddress: "192.0.2.2" });
    u.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<Alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n");
    expect(codes(u.replies()).slice(2)).toEqual(["250 2.1.0", "451 4.7.1", "250 2.1.5"]); // alice's 3rd, bob's 1st
  });
  test("stage: sender, sender_domain and auth_user keys; <> has no sender; a refusal charges no other limit", async () => {
    const clock = new ManualClock(false);
    const limits = [entry("sender_domain", 3), entry("sender", 1)];
    const stage = rateLimitStage(() => limits, () => {}, () => clock.now());
    const t = sessionTier({ stages: [stage] });
    t.send("EHLO c.test\r\n");
    const mail = (from: string) => t.send(`MAIL FROM:<${from}>\r\nRSET\r\n`);
    mail("a@d.test");
    mail("A@D.TEST"); // same sender, case-folded: over 1/1m, and d.test is not charged for it
    mail("b@d.test");
    mail("c@d.test");
    mail("e@d.test"); // d.test's 4th
    mail("");
    mail("");
    expect(codes(t.replies()).slice(2).filter((_, i) => i % 2 === 0)).toEqual([
      "250 2.1.0", "451 4.7.1", "250 2.1.0", "250 2.1.0", "451 4.7.1", "250 2.1.0", "250 2.1.0",
    ]);
    const au = [entry("auth_user", 1)];
    const a = sessionTier({ stages: [rateLimitStage(() => au, () => {}, () => clock.now())], listener: "submission" });
    a.send("EHLO c.test\r\nSTARTTLS\r\n");
    await a.settle();
    a.send(`EHLO c.test\r\nAUTH PLAIN ${btoa("\0alice@example.test\0secret-alice")}\r\n`);
    await a.settle();
    a.send("MAIL FROM:<alice@example.test>\r\nRSET\r\nMAIL FROM:<alice@example.test>\r\n");
    expect(codes(a.replies()).slice(-3)).toEqual(["250 2.1.0", "250 2.0.0", "451 4.7.1"]);
  });
});

/** A scripted fleet (directory/shared-limits.ts is tested against PostgreSQL in test/e2e/fleet-limits.test.ts). */
function fakeFleet(o: { rate?: number | null; greylist?: "pass" | "defer" | null }): FleetCounters & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    rate(charges) {
      calls.push(`rate ${charges.map((c) => `${c.key}=${c.count}/${c.windowMs}`).join(",")}`);
      return Promise.resolve(o.rate === undefined ? -1 : o.rate);
    },
    greylist(key, delayMs) {
      calls.push(`greylist ${key} ${delayMs}`);
      return Promise.resolve(o.greylist === undefined ? "defer" : o.greylist);
    },
  };
}

describe("fleet-wide counts (kind = postgres)", () => {
  const entry = (key: RateLimitEntry["key"], count: number): RateLimitEntry => ({
    key,
    rate: `${count}/1m`,
    limiter: new RateLimiter({ count, windowMs: MINUTE }),
  });
  test("rate limits: the fleet is asked only after the local limiters allow; its refusal names the limit; no answer keeps the local one", async () => {
    const clock = new ManualClock(false);
    const reports: Array<{ reason: DefenceReason; fields: Record<string, unknown> }> = [];
    const limits = [entry("ip", 2), entry("sender", 5)];
    let fleet = fakeFleet({ rate: 1 });
    const stage = rateLimitStage(() => limits, (reason, fields) => reports.push({ reason, fields }), () => clock.now(), () => fleet);
    const t = await transaction([stage], { remoteAddress: "192.0.2.1", from: "S@remote.test" });
    expect(codes(t.replies()).slice(2, 3)).toEqual(["451 4.7.1"]);
    expect(fleet.calls).toEqual([`rate ip 2/1m 192.0.2.1=2/${MINUTE},sender 5/1m s@remote.test=5/${MINUTE}`]);
    expect(reports[0]!.fields).toMatchObject({ key: "sender", value: "s@remote.test" });
    fleet = fakeFleet({ rate: null }); // no answer: the local limiters decide (one token left for the ip)
    expect(codes((await transaction([stage], { remoteAddress: "192.0.2.1" })).replies())[2]).toBe("250 2.1.0");
    const last = fakeFleet({ rate: -1 });
    fleet = last;
    expect(codes((await transaction([stage], { remoteAddress: "192.0.2.1" })).replies())[2]).toBe("451 4.7.1");
    expect(last.calls).toEqual([]); // refused locally: the fleet is not asked
  });
  test("greylisting: an unknown triple asks the fleet; its pass is remembered locally; no answer defers as before", async () => {
    const r = rig({ greylist: true, greylistDelayMs: 5 * MINUTE }, scripted({}));
    const store = new GreylistStore();
    let fleet = fakeFleet({ greylist: "pass" });
    const stage = greylistStage(r.deps, store, () => r.clock.now(), () => fleet);
    expect(codes((await transaction([stage], { remoteAddress: "192.0.2.10" })).replies()).at(-1)).toBe("250 2.1.5");
    expect(fleet.calls).toEqual([`greylist 192.0.2.0/24 s@remote.test alice@example.test ${5 * MINUTE}`]);
    fleet = fakeFleet({ greylist: "defer" });
    expect(codes((await transaction([stage], { remoteAddress: "192.0.2.10" })).replies()).at(-1)).toBe("250 2.1.5");
    expect(fleet.calls).toEqual([]); // known here now: no query
    fleet = fakeFleet({ greylist: null });
    expect(codes((await transaction([stage], { remoteAddress: "198.51.100.1" })).replies()).at(-1)).toBe("451 4.7.1");
    expect(r.reports.at(-1)!.reason).toBe("greylist");
  });
});
