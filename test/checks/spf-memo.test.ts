/**
 * SpfMemo: one evaluation per (client, HELO, sender) for SPF_MEMO_MS, never a remembered temperror, bounded size.
 * Real DNS (the loopback zone server) and our Resolver; a clock of our own for the expiry.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SPF_MEMO_MAX, SpfMemo } from "../../src/checks/index.ts";
import { Resolver } from "../../src/dns/index.ts";
import { startZoneServer, type ZoneServer } from "../spf/zone-server.ts";

let server: ZoneServer;
let dns: Resolver;
beforeAll(async () => {
  server = await startZoneServer(
    new Map([
      ["memo.test", [{ type: "TXT", data: ["v=spf1 ip4:192.0.2.0/24 -all"] }]],
      ["slow.test", ["TIMEOUT"]],
    ]),
  );
  dns = new Resolver({ servers: [server.server], timeoutMs: 150, attempts: 1 });
});
afterAll(async () => {
  await server.stop();
});

describe("SpfMemo", () => {
  test("the same query within the memo's time is answered from memory; after it, evaluated again", async () => {
    let t = 1_000;
    const memo = new SpfMemo(() => t, 10_000);
    const q = { ip: "192.0.2.7", helo: "mx.memo.test", sender: "a@memo.test" };
    const first = await memo.check(q, dns);
    expect(first.result).toBe("pass");
    t += 9_999;
    expect(await memo.check(q, dns)).toBe(first); // the very same outcome: no evaluation
    expect((await memo.check({ ...q, ip: "198.51.100.1" }, dns)).result).toBe("fail"); // another client
    t += 2;
    const again = await memo.check(q, dns);
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });
  test("temperror is never remembered", async () => {
    const memo = new SpfMemo();
    const q = { ip: "192.0.2.7", helo: "h.test", sender: "a@slow.test" };
    expect((await memo.check(q, dns)).result).toBe("temperror");
    expect(memo.size).toBe(0);
  });
  test(`at most ${SPF_MEMO_MAX} entries`, async () => {
    const memo = new SpfMemo();
    for (let i = 0; i < SPF_MEMO_MAX + 50; i++) await memo.check({ ip: `192.0.2.${i % 250}`, helo: `h${i}.test`, sender: "a@memo.test" }, dns);
    expect(memo.size).toBe(SPF_MEMO_MAX);
  }, 60_000);
});

describe("SpfMemo.peek", () => {
  test("answers at once for a remembered query, undefined otherwise or once expired", async () => {
    let t = 0;
    const memo = new SpfMemo(() => t, 1_000);
    const q = { ip: "192.0.2.9", helo: "h.test", sender: "b@memo.test" };
    expect(memo.peek(q)).toBeUndefined();
    const r = await memo.check(q, dns);
    expect(memo.peek(q)).toBe(r);
    t += 1_001;
    expect(memo.peek(q)).toBeUndefined();
  });
});
