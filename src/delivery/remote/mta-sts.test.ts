/**
 * MTA-STS pieces (RFC 8461): the policy and TXT parsers, mx pattern matching (§4.1), and the fetch against a real
 * HTTPS server with bad input: a 1 MB policy, 1,000 mx lines, a server that never answers, a redirect. Each ends
 * within its bound; the cache keeps the last good policy (§5.1) and refreshes when the TXT id changes.
 */
import { createServer, type Server } from "node:https";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { peerTest } from "../../../test/helpers/peers.ts";
import { makeTestCa, type TestCa } from "../../../test/helpers/test-ca.ts";
import type { DnsLookup, DnsResult, RecordType } from "../../dns/index.ts";
import { MAX_POLICY_BYTES, MtaStsCache, mxMatches, parsePolicy, parseStsTxt } from "./mta-sts.ts";

describe("MTA-STS parsing", () => {
  test("a policy: version, mode, mx patterns, max_age; CRLF or LF; unknown keys ignored", () => {
    expect(parsePolicy("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\nfoo: bar\r\n")).toEqual({
      mode: "enforce",
      mx: ["mx1.example.com", "*.example.net"],
      maxAge: 604800,
    });
    expect(parsePolicy("version: STSv1\nmode: testing\nmax_age: 99999999999\n")).toBeNull();
    expect(parsePolicy("version: STSv1\nmode: testing\nmax_age: 9999999999\n")?.maxAge).toBe(31_557_600);
    expect(parsePolicy("version: STSv2\nmode: enforce\nmax_age: 1\n")).toBeNull();
    expect(parsePolicy("version: STSv1\nmode: strict\nmax_age: 1\n")).toBeNull();
    expect(parsePolicy("version: STSv1\nmode: enforce\n")).toBeNull();
  });

  test("1,000 mx lines: parsed in bounded time, at most 100 kept", () => {
    const t0 = performance.now();
    const p = parsePolicy(`version: STSv1\nmode: enforce\nmax_age: 86400\n${Array.from({ length: 1000 }, (_, i) => `mx: mx${i}.example.com`).join("\n")}\n`);
    expect(p?.mx).toHaveLength(100);
    expect(mxMatches(p!.mx, "mx5000.example.com")).toBe(false);
    expect(performance.now() - t0).toBeLessThan(200);
  });

  test("mx patterns (§4.1): exact names, and a wildcard for exactly one left-most label", () => {
    expect(mxMatches(["mx.example.com"], "MX.Example.COM.")).toBe(true);
    expect(mxMatches(["*.example.com"], "mx.example.com")).toBe(true);
    expect(mxMatches(["*.example.com"], "a.b.example.com")).toBe(false);
    expect(mxMatches(["*.example.com"], "example.com")).toBe(false);
    expect(mxMatches(["mx.example.com"], "mx.example.com.evil.test")).toBe(false);
  });

  test("the _mta-sts TXT record (§3.1): the id of exactly one STSv1 record", () => {
    expect(parseStsTxt(["v=STSv1; id=20160831085700Z"])).toBe("20160831085700Z");
    expect(parseStsTxt(["v=spf1 -all", "v=STSv1;id=abc"])).toBe("abc");
    expect(parseStsTxt(["v=STSv1; id=a", "v=STSv1; id=b"])).toBeNull();
    expect(parseStsTxt(["v=STSv1; id=bad-chars!"])).toBeNull();
    expect(parseStsTxt([])).toBeNull();
  });
});

/** A DnsLookup answering from a table (the fetch and cache logic is under test here, not DNS). */
function fakeDns(txt: () => string[]): DnsLookup {
  return {
    async lookup<T extends RecordType>(name: string, type: T): Promise<DnsResult<T>> {
      const ok = (records: unknown[]) => ({ status: "ok", records, ad: false, ttl: 60, cnames: [] }) as unknown as DnsResult<T>;
      if (type === "TXT" && name.startsWith("_mta-sts.")) return ok(txt());
      if (type === "A" && name.startsWith("mta-sts.")) return ok(["127.0.0.1"]);
      return { status: "nodata", records: [], ad: false, ttl: 60, cnames: [] };
    },
  };
}

describe("MTA-STS fetch and cache against a real HTTPS server", () => {
  let ca: TestCa | null = null;
  let server: Server | null = null;
  let port = 0;
  let dir = "";
  const bodies: Record<string, () => { status: number; type?: string; body?: string | Buffer; hang?: boolean; location?: string }> = {};
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ringmta-sts-"));
    try {
      ca = makeTestCa();
    } catch {
      return;
    }
    const names = ["ok", "big", "many", "hang", "redirect", "html", "refresh"].map((n) => `mta-sts.${n}.test`);
    const leaf = ca.leaf(names);
    server = createServer({ cert: leaf.chain, key: leaf.key }, (req, res) => {
      const host = String(req.headers.host ?? "").split(".")[1];
      const b = bodies[host]?.();
      if (b === undefined) return void res.writeHead(404).end();
      if (b.hang) return; // never answers
      res.writeHead(b.status, { "Content-Type": b.type ?? "text/plain", ...(b.location ? { Location: b.location } : {}) });
      res.end(b.body ?? "");
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server?.closeAllConnections?.();
    await new Promise((r) => (server ? server.close(r) : r(null)));
    ca?.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const good = "version: STSv1\nmode: enforce\nmx: mx.ok.test\nmax_age: 86400\n";
  const cache = (txt: () => string[], sub: string, timeoutMs = 2000) =>
    new MtaStsCache({ dir: join(dir, sub), dns: fakeDns(txt), ca: ca!.cert, port, timeoutMs });

  peerTest("openssl", "a good policy is fetched (certificate from relay.tls_ca), cached on disk, and kept across a new cache", async () => {
    bodies.ok = () => ({ status: 200, body: good });
    const c = cache(() => ["v=STSv1; id=1"], "ok");
    expect(await c.policy("ok.test")).toEqual({ mode: "enforce", mx: ["mx.ok.test"], maxAge: 86400 });
    expect(readdirSync(join(dir, "ok"))).toHaveLength(1);
    // The server goes away; a new cache (a restart) still knows the policy; so does one whose TXT lookup fails.
    bodies.ok = () => ({ status: 500 });
    expect(await cache(() => ["v=STSv1; id=1"], "ok").policy("ok.test")).toMatchObject({ mode: "enforce" });
    expect(await cache(() => [], "ok").policy("ok.test")).toMatchObject({ mode: "enforce" });
  });

  peerTest("openssl", "a new id in DNS fetches again; a failed refresh keeps the cached policy", async () => {
    let id = "1";
    let mode = "testing";
    bodies.refresh = () => ({ status: 200, body: `version: STSv1\nmode: ${mode}\nmx: mx.refresh.test\nmax_age: 86400\n` });
    const c = cache(() => [`v=STSv1; id=${id}`], "refresh");
    expect((await c.policy("refresh.test"))?.mode).toBe("testing");
    mode = "enforce";
    expect((await c.policy("refresh.test"))?.mode).toBe("testing"); // same id: no fetch
    id = "2";
    expect((await c.policy("refresh.test"))?.mode).toBe("enforce");
    id = "3";
    bodies.refresh = () => ({ status: 503 });
    expect((await c.policy("refresh.test"))?.mode).toBe("enforce");
  });

  peerTest("openssl", "a 1 MB policy is refused at 64 KiB; a redirect and a non-text type are refused", async () => {
    bodies.big = () => ({ status: 200, body: Buffer.alloc(1024 * 1024, "mx: a.big.test\n") });
    bodies.redirect = () => ({ status: 301, location: "https://mta-sts.ok.test/.well-known/mta-sts.txt" });
    bodies.html = () => ({ status: 200, type: "text/html", body: good });
    const t0 = performance.now();
    expect(await cache(() => ["v=STSv1; id=1"], "big").policy("big.test")).toBeNull();
    expect(await cache(() => ["v=STSv1; id=1"], "redirect").policy("redirect.test")).toBeNull();
    expect(await cache(() => ["v=STSv1; id=1"], "html").policy("html.test")).toBeNull();
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(MAX_POLICY_BYTES).toBe(65536);
  });

  peerTest("openssl", "1,000 mx lines over HTTPS: a policy of at most 100 patterns", async () => {
    bodies.many = () => ({ status: 200, body: `version: STSv1\nmode: enforce\nmax_age: 600\n${Array.from({ length: 1000 }, (_, i) => `mx: m${i}.many.test`).join("\n")}\n` });
    expect((await cache(() => ["v=STSv1; id=1"], "many").policy("many.test"))?.mx).toHaveLength(100);
  });

  peerTest("openssl", "a server that never answers: given up after the time limit, no policy", async () => {
    bodies.hang = () => ({ status: 0, hang: true });
    const t0 = performance.now();
    expect(await cache(() => ["v=STSv1; id=1"], "hang", 500).policy("hang.test")).toBeNull();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3000);
  });

  peerTest("openssl", "a certificate from a CA we were not given: refused", async () => {
    bodies.ok = () => ({ status: 200, body: good });
    const other = makeTestCa("unrelated");
    try {
      const c = new MtaStsCache({ dir: join(dir, "untrusted"), dns: fakeDns(() => ["v=STSv1; id=1"]), ca: other.cert, port, timeoutMs: 2000 });
      expect(await c.policy("ok.test")).toBeNull();
    } finally {
      other.remove();
    }
  });

  peerTest("openssl", "a failed fetch names its RFC 8460 result type and is not retried for a while (each delivery would wait)", async () => {
    let hits = 0;
    bodies.html = () => {
      hits++;
      return { status: 200, body: "version: STSv1\nmode: strict\nmax_age: 1\n" };
    };
    const invalid = cache(() => ["v=STSv1; id=1"], "invalid");
    expect(await invalid.policy("html.test")).toBeNull();
    expect(invalid.lastError("html.test")).toBe("sts-policy-invalid");
    expect(await invalid.policy("html.test")).toBeNull();
    expect(hits).toBe(1);
    bodies.hang = () => ({ status: 0, hang: true });
    const hang = cache(() => ["v=STSv1; id=1"], "hang2", 300);
    expect(await hang.policy("hang.test")).toBeNull();
    expect(hang.lastError("hang.test")).toBe("sts-policy-fetch-error");
    const t0 = performance.now();
    expect(await hang.policy("hang.test")).toBeNull();
    expect(performance.now() - t0).toBeLessThan(100);
    const other = makeTestCa("unrelated");
    try {
      bodies.ok = () => ({ status: 200, body: good });
      const c = new MtaStsCache({ dir: join(dir, "webpki"), dns: fakeDns(() => ["v=STSv1; id=1"]), ca: other.cert, port, timeoutMs: 2000 });
      expect(await c.policy("ok.test")).toBeNull();
      expect(c.lastError("ok.test")).toBe("sts-webpki-invalid");
      expect(c.lastError("html.test")).toBeUndefined();
    } finally {
      other.remove();
    }
  });
});
