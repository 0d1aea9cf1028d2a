import { describe, expect, test } from "vitest";
import { createLogger, type LogFormat } from "./log.ts";

function capture(format: LogFormat): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger(format, { write: (l) => lines.push(l) }), lines };
}

describe("json logger", () => {
  test("one JSON object per line: ts, level, event first, then the fields", () => {
    const { log, lines } = capture("json");
    log.info("smtp.accepted", { id: "Q1", to: ["a@b.test"], size: 12 });
    log.warn("x.y");
    log.error("z", { error: "boom" });
    expect(lines.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1)).toBe(true);
    const j = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(Object.keys(j[0]!)).toEqual(["ts", "level", "event", "id", "to", "size"]);
    expect(j[0]).toMatchObject({ level: "info", event: "smtp.accepted", id: "Q1", to: ["a@b.test"], size: 12 });
    expect(j[0]!.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(j.map((x) => x.level)).toEqual(["info", "warn", "error"]);
  });

  test("a client-supplied value with CR, LF or NUL stays inside its one line", () => {
    const { log, lines } = capture("json");
    log.info("smtp.helo", { helo: 'evil\r\n{"event":"forged"}\u0000' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.slice(0, -1)).not.toMatch(/[\r\n\u0000]/);
    expect((JSON.parse(lines[0]!) as { helo: string }).helo).toBe('evil\r\n{"event":"forged"}\u0000');
  });

  test("fields named ts, level or event do not overwrite the line's own", () => {
    const { log, lines } = capture("json");
    log.info("real", { event: "forged", level: "error", ts: "then", kept: 1 });
    expect(JSON.parse(lines[0]!)).toMatchObject({ event: "real", level: "info", kept: 1 });
    expect((JSON.parse(lines[0]!) as { ts: string }).ts).not.toBe("then");
  });
});

describe("text logger", () => {
  test("time, padded level, event, then key=value; undefined fields are left out", () => {
    const { log, lines } = capture("text");
    log.info("smtp.accepted", { id: "Q1", from: "a@b.test", size: 3, auth: undefined, to: ["x@y.test"] });
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  smtp\.accepted id=Q1 from=a@b\.test size=3 to=\["x@y\.test"\]\n$/);
  });

  test("values that could forge fields, lines or terminal escapes are quoted and escaped", () => {
    const { log, lines } = capture("text");
    log.warn("t", { a: "two words", b: "k=v", c: 'q"', d: "", e: "line\nbreak", f: "esc\u001b[31m", g: "del\u007f", h: "back\\slash" });
    const line = lines[0]!;
    expect(line.indexOf("\n")).toBe(line.length - 1);
    expect(line).toContain('a="two words" b="k=v" c="q\\"" d="" e="line\\nbreak" f="esc\\u001b[31m" g="del\\u007f" h="back\\\\slash"');
    expect(line).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });
});

describe("json lines are what JSON.stringify makes of { ts, level, event, ...fields }", () => {
  test("strings needing escapes, numbers, arrays, nested objects, undefined and null fields, no fields", () => {
    const { log, lines } = capture("json");
    const cases: Array<Record<string, unknown> | undefined> = [
      { id: "Q1", to: ["a@b.test", 'q"@x'], size: 12, auth: undefined, gone: null, nested: { a: [1, { b: "\u2028" }] } },
      { text: "tab\tquote\"backslash\\ nul\u0000 del\u007f é 🚀" },
      {},
      undefined,
    ];
    for (const f of cases) log.warn("smtp.test", f);
    cases.forEach((f, i) => {
      const line = lines[i]!;
      const ts = (JSON.parse(line) as { ts: string }).ts;
      expect(line).toBe(JSON.stringify({ ts, level: "warn", event: "smtp.test", ...(f ?? {}) }) + "\n");
    });
  });
});
