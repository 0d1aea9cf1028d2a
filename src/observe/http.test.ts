import type { AddressInfo } from "node:net";
import { describe, expect, test } from "vitest";
import { parsePrometheus } from "../../test/helpers/prometheus.ts";
import { serveObserve } from "./http.ts";
import { Counter, Registry } from "./metrics.ts";

describe("observe HTTP endpoint", () => {
  test("GET /metrics, /healthz (200 and 503 with the reason), 404 and 405 on a real socket", async () => {
    const reg = new Registry();
    reg.add(new Counter("h_total", "H.")).inc({ a: "b" });
    let health: { ok: true } | { ok: false; reason: string } = { ok: true };
    const server = await serveObserve("127.0.0.1", 0, { metrics: () => reg.render(), health: () => health });
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const m = await fetch(`${base}/metrics`);
      expect(m.status).toBe(200);
      expect(m.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(parsePrometheus(await m.text()).get("h_total")!.samples[0]!.value).toBe(1);

      const ok = await fetch(`${base}/healthz`);
      expect([ok.status, await ok.text()]).toEqual([200, "ok\n"]);
      health = { ok: false, reason: "delivery workers down" };
      const bad = await fetch(`${base}/healthz?x=1`);
      expect(bad.status).toBe(503);
      expect(await bad.text()).toContain("delivery workers down");

      expect((await fetch(`${base}/nothing`)).status).toBe(404);
      const post = await fetch(`${base}/metrics`, { method: "POST", body: "x" });
      expect(post.status).toBe(405);
      expect(post.headers.get("allow")).toBe("GET, HEAD");
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
