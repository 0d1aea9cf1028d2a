/**
 * Issue 6 §4 / CONTRACT "Guarantees": GET /metrics is Prometheus text exposition 0.0.4 (checked by the strict
 * parser in test/helpers/prometheus.ts) with at least the contract's families, and its counters move as mail
 * flows; GET /healthz answers 200 "ok".
 */
import { describe, expect, test } from "vitest";
import {
  SmtpClient,
  USERS,
  maildirFiles,
  sendMail,
  simpleMessage,
  uniqueId,
  useServer,
  waitFor,
} from "../helpers/index.ts";
import { ExpositionError, parsePrometheus, samplesOf, scrape, valueOf, type Exposition } from "../helpers/prometheus.ts";

describe("the strict exposition parser", () => {
  const ok = [
    "# HELP a_total Things, with a \\\\ and a \\n in the help.",
    "# TYPE a_total counter",
    'a_total{k="v \\"q\\" \\\\ \\n",z="1",} 3 1700000000000',
    "a_total 1e3",
    "# TYPE g gauge",
    "g -Inf",
    "g{x=\"\"} NaN",
    "# a plain comment",
    "",
    "# TYPE h histogram",
    'h_bucket{le="0.5"} 1',
    'h_bucket{le="1"} 2',
    'h_bucket{le="+Inf"} 3',
    "h_sum 4.25",
    "h_count 3",
  ].join("\n") + "\n";

  test("parses families, labels with escapes, special floats, timestamps and histograms", () => {
    const f = parsePrometheus(ok);
    expect([...f.keys()]).toEqual(["a_total", "g", "h"]);
    expect(f.get("a_total")!.help).toBe("Things, with a \\ and a \n in the help.");
    expect(f.get("a_total")!.samples[0]).toEqual({ name: "a_total", labels: { k: 'v "q" \\ \n', z: "1" }, value: 3, timestamp: 1700000000000 });
    expect(valueOf(f, "a_total")).toBe(1000);
    expect(valueOf(f, "g")).toBe(-Infinity);
    expect(valueOf(f, "g", { x: "" })).toBeNaN();
    expect(valueOf(f, "h_count")).toBe(3);
    expect(samplesOf(f, "h_bucket").map((s) => s.labels.le)).toEqual(["0.5", "1", "+Inf"]);
  });

  const bad: Array<[string, string]> = [
    ["no final line feed", "# TYPE a counter\na 1"],
    ["a sample without # TYPE", "# HELP a x\na 1\n"],
    ["an undeclared sample", "# TYPE a counter\nb 1\n"],
    ["a bad metric name", "# TYPE a counter\n1a 1\n"],
    ["a bad value", "# TYPE a counter\na one\n"],
    ["Infinity spelled the JavaScript way", "# TYPE a gauge\na Infinity\n"],
    ["a negative counter", "# TYPE a counter\na -1\n"],
    ["an unknown type", "# TYPE a meter\na 1\n"],
    ["a second TYPE", "# TYPE a counter\n# TYPE a counter\na 1\n"],
    ["a second HELP", "# HELP a x\n# HELP a y\n# TYPE a counter\na 1\n"],
    ["TYPE after the samples", "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\n# TYPE a counter\n"],
    ["a family split in two groups", "# TYPE a counter\n# TYPE b counter\na 1\nb 1\na{x=\"1\"} 2\n"],
    ["a duplicate series", "# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n"],
    ["a duplicate label", "# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n"],
    ["a reserved label name", "# TYPE a counter\na{__x=\"1\"} 1\n"],
    ["an unterminated label value", "# TYPE a counter\na{x=\"1} 1\n"],
    ["an unquoted label value", "# TYPE a counter\na{x=1} 1\n"],
    ["a bad escape in a label value", "# TYPE a counter\na{x=\"\\t\"} 1\n"],
    ["a bad escape in HELP", "# HELP a \\t\n# TYPE a counter\na 1\n"],
    ["trailing garbage", "# TYPE a counter\na 1 2 3\n"],
    ["a CRLF line end", "# TYPE a counter\r\na 1\r\n"],
    ["a histogram without +Inf", '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ["a histogram whose _count differs from +Inf", '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n'],
    ["decreasing buckets", '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="2"} 2\nh_bucket{le="+Inf"} 3\nh_sum 1\nh_count 3\n'],
    ["unordered buckets", '# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ["a bucket without le", "# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n"],
    ["a histogram without _sum", '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n'],
    ["a bare histogram sample", "# TYPE h histogram\nh 1\n"],
  ];
  test.each(bad)("rejects %s", (_what, text) => {
    expect(() => parsePrometheus(text)).toThrow(ExpositionError);
  });
});

const srv = useServer();

async function scrapeOk(): Promise<Exposition> {
  const r = await scrape(srv().ports.metrics);
  expect(r.status).toBe(200);
  return r.fams;
}

/** One transaction on the mx listener; returns the 250 reply's final code. */
async function deliverTo(to: string, body: Buffer): Promise<number> {
  const c = await SmtpClient.connect(srv().ports.mx);
  try {
    await c.hello();
    const r = await sendMail(c, "sender@remote.test", [to], body);
    await c.cmd("QUIT");
    return r.final?.code ?? r.rcpts[0]?.code ?? r.mail.code;
  } finally {
    c.destroy();
  }
}

describe("/metrics and /healthz", () => {
  test("/metrics is text/plain; version=0.0.4 and parses strictly", async () => {
    const r = await scrape(srv().ports.metrics);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/plain; ?version=0\.0\.4(;|$)/);
    expect(r.fams.size).toBeGreaterThan(0);
  });

  test("declares the CONTRACT families with their types", async () => {
    const f = await scrapeOk();
    const want: Record<string, string> = {
      ringmta_connections_total: "counter",
      ringmta_connections_open: "gauge",
      ringmta_messages_accepted_total: "counter",
      ringmta_messages_rejected_total: "counter",
      ringmta_deliveries_total: "counter",
      ringmta_queue_messages: "gauge",
      ringmta_queue_oldest_seconds: "gauge",
      ringmta_dkim_signed_total: "counter",
    };
    for (const [name, type] of Object.entries(want)) {
      expect(f.get(name)?.type, name).toBe(type);
      expect(f.get(name)?.help, `HELP of ${name}`).toBeTruthy();
    }
  });

  test("/healthz answers 200 ok", async () => {
    const res = await fetch(`http://127.0.0.1:${srv().ports.metrics}/healthz`);
    expect(res.status).toBe(200);
    expect((await res.text()).trim()).toBe("ok");
  });

  test("connections: total and open per listener follow a held connection", async () => {
    const before = await scrapeOk();
    const c = await SmtpClient.connect(srv().ports.submission);
    await c.hello();
    const during = await scrapeOk();
    expect(valueOf(during, "ringmta_connections_total", { listener: "submission" })).toBe(
      valueOf(before, "ringmta_connections_total", { listener: "submission" }) + 1,
    );
    expect(valueOf(during, "ringmta_connections_open", { listener: "submission" })).toBe(
      valueOf(before, "ringmta_connections_open", { listener: "submission" }) + 1,
    );
    await c.cmd("QUIT");
    await c.closed();
    c.destroy();
    await waitFor(async () => {
      const after = await scrapeOk();
      return valueOf(after, "ringmta_connections_open", { listener: "submission" }) === valueOf(before, "ringmta_connections_open", { listener: "submission" });
    });
  });

  test("accepted, bytes, deliveries, delivery latency and queue move as mail is sent; 550 counts as rejected", async () => {
    const before = await scrapeOk();
    const n = 3;
    const bodies = Array.from({ length: n }, () => simpleMessage({ messageId: uniqueId("metrics"), to: "alice@example.test" }));
    const had = maildirFiles(srv().dataDir, "example.test", "alice").length;
    for (const b of bodies) expect(await deliverTo("alice@example.test", b)).toBe(250);
    expect(await deliverTo("nobody@example.test", bodies[0]!)).toBe(550);
    await waitFor(() => maildirFiles(srv().dataDir, "example.test", "alice").length === had + n, 15_000);

    // Deliveries are counted when the worker reports back, a moment after the file lands.
    const after = await waitFor(async () => {
      const f = await scrapeOk();
      const d = valueOf(f, "ringmta_deliveries_total", { courier: "local", outcome: "delivered" });
      return d === valueOf(before, "ringmta_deliveries_total", { courier: "local", outcome: "delivered" }) + n && valueOf(f, "ringmta_queue_messages") === 0 ? f : null;
    }, 15_000);

    const delta = (name: string, labels: Record<string, string> = {}): number => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta("ringmta_messages_accepted_total", { listener: "mx" })).toBe(n);
    expect(delta("ringmta_messages_rejected_total", { code: "550" })).toBe(1);
    expect(delta("ringmta_connections_total", { listener: "mx" })).toBe(n + 1);
    expect(delta("ringmta_received_bytes_total", { listener: "mx" })).toBe(bodies.reduce((s, b) => s + b.length, 0));
    expect(delta("ringmta_delivery_seconds_count")).toBe(n);
    expect(delta("ringmta_delivery_seconds_sum")).toBeGreaterThan(0);
    expect(valueOf(after, "ringmta_queue_messages")).toBe(0);
    expect(valueOf(after, "ringmta_queue_oldest_seconds")).toBe(0);
    expect(after.get("ringmta_delivery_seconds")?.type).toBe("histogram");
    // Every label value of the families stays in its closed set (no free text leaking into labels).
    for (const s of samplesOf(after, "ringmta_deliveries_total")) {
      expect(["delivered", "deferred", "failed"]).toContain(s.labels.outcome);
      expect(Object.keys(s.labels).sort()).toEqual(["courier", "outcome"]);
    }
    for (const s of samplesOf(after, "ringmta_messages_rejected_total")) expect(s.labels.code).toMatch(/^[45]\d\d$/);
  });

  test("AUTH successes and failures are counted per listener", async () => {
    const before = await scrapeOk();
    const c = await SmtpClient.connect(srv().ports.submission);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    await c.cmd("EHLO client.test");
    const plain = (u: string, p: string): string => Buffer.from(`\0${u}\0${p}`).toString("base64");
    expect((await c.cmd(`AUTH PLAIN ${plain("alice@example.test", "wrong-password")}`)).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain("alice@example.test", USERS.alice)}`)).code).toBe(235);
    await c.cmd("QUIT");
    c.destroy();
    const after = await scrapeOk();
    const d = (result: string): number =>
      valueOf(after, "ringmta_auth_total", { listener: "submission", result }) - valueOf(before, "ringmta_auth_total", { listener: "submission", result });
    expect(d("success")).toBe(1);
    expect(d("failure")).toBe(1);
    expect(valueOf(after, "ringmta_messages_rejected_total", { code: "535" }) - valueOf(before, "ringmta_messages_rejected_total", { code: "535" })).toBe(1);
  });
});
