import { describe, expect, test } from "vitest";
import { parsePrometheus, valueOf } from "../../test/helpers/prometheus.ts";
import { Counter, formatValue, GaugeFn, Histogram, Registry } from "./metrics.ts";

describe("metrics registry", () => {
  test("its exposition parses with the strict text-format 0.0.4 parser, values intact", () => {
    const r = new Registry();
    const c = r.add(new Counter("t_total", "Things\\with a backslash\nand a newline."));
    const g = r.add(new Counter("t_open", "Open now.", true));
    const h = r.add(new Histogram("t_seconds", "Latency.", [0.005, 0.5, 1]));
    r.add(new GaugeFn("t_fn", "Read at scrape.", () => 7.5));
    c.inc({ listener: 'mx "1"\\\n' });
    c.inc({ listener: 'mx "1"\\\n' }, 2);
    c.inc({ listener: "sub" });
    g.inc({ listener: "sub" });
    g.inc({ listener: "sub" }, -1);
    for (const v of [0.001, 0.2, 0.7, 30]) h.observe(v);
    const f = parsePrometheus(r.render());
    expect(f.get("t_total")!.help).toBe("Things\\with a backslash\nand a newline.");
    expect(f.get("t_total")!.type).toBe("counter");
    expect(f.get("t_open")!.type).toBe("gauge");
    expect(valueOf(f, "t_total", { listener: 'mx "1"\\\n' })).toBe(3);
    expect(valueOf(f, "t_total", { listener: "sub" })).toBe(1);
    expect(valueOf(f, "t_open", { listener: "sub" })).toBe(0);
    expect(valueOf(f, "t_fn")).toBe(7.5);
    expect(valueOf(f, "t_seconds_bucket", { le: "0.005" })).toBe(1);
    expect(valueOf(f, "t_seconds_bucket", { le: "0.5" })).toBe(2);
    expect(valueOf(f, "t_seconds_bucket", { le: "1" })).toBe(3);
    expect(valueOf(f, "t_seconds_bucket", { le: "+Inf" })).toBe(4);
    expect(valueOf(f, "t_seconds_count")).toBe(4);
    expect(valueOf(f, "t_seconds_sum")).toBeCloseTo(30.901);
  });

  test("a bound series updates the same sample as the labelled calls, and shows at 0 once bound", () => {
    const r = new Registry();
    const c = r.add(new Counter("b_total", "B."));
    const s = c.bind({ listener: "mx" });
    expect(valueOf(parsePrometheus(r.render()), "b_total", { listener: "mx" })).toBe(0);
    expect(parsePrometheus(r.render()).get("b_total")!.samples).toHaveLength(1);
    s.inc();
    s.inc(4);
    c.inc({ listener: "mx" });
    expect(s.get()).toBe(6);
    expect(c.get({ listener: "mx" })).toBe(6);
    s.set(2);
    expect(valueOf(parsePrometheus(r.render()), "b_total", { listener: "mx" })).toBe(2);
  });

  test("infinities and NaN are written the way the format spells them", () => {
    expect([formatValue(Infinity), formatValue(-Infinity), formatValue(NaN), formatValue(0.25), formatValue(1e21)]).toEqual([
      "+Inf",
      "-Inf",
      "NaN",
      "0.25",
      "1e+21",
    ]);
    const r = new Registry();
    r.add(new GaugeFn("inf_gauge", "Inf.", () => Infinity));
    expect(valueOf(parsePrometheus(r.render()), "inf_gauge")).toBe(Infinity);
  });

  test("a family name registered twice and unsorted histogram buckets are refused", () => {
    const r = new Registry();
    r.add(new Counter("dup_total", "A."));
    expect(() => r.add(new Counter("dup_total", "B."))).toThrow(/twice/);
    expect(() => new Histogram("h", "H.", [1, 0.5])).toThrow(/increasing/);
    expect(() => new Histogram("h", "H.", [1, Infinity])).toThrow(/finite/);
  });

  test("an empty registry renders a valid (empty) exposition", () => {
    expect(parsePrometheus(new Registry().render()).size).toBe(0);
  });
});
