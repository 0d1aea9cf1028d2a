import { describe, expect, test } from "vitest";
import { BareNewlineCheck } from "./bdat.ts";

const enc = new TextEncoder();
function check(chunks: string[]): boolean {
  const c = new BareNewlineCheck();
  for (const s of chunks) if (!c.scan(enc.encode(s), 0, s.length)) return false;
  return c.finish();
}

describe("BareNewlineCheck", () => {
  test("CRLF-only data passes", () => {
    expect(check(["a\r\nb\r\n", "\r\n", "c"])).toBe(true);
    expect(check([])).toBe(true);
    expect(check([""])).toBe(true);
  });
  test("bare LF and bare CR fail", () => {
    expect(check(["a\nb"])).toBe(false);
    expect(check(["a\rb"])).toBe(false);
    expect(check(["\n"])).toBe(false);
    expect(check(["a\r\r\n"])).toBe(false);
  });
  test("a CR LF split over chunks passes; CR then non-LF fails", () => {
    expect(check(["a\r", "\nb"])).toBe(true);
    expect(check(["a\r", "b"])).toBe(false);
    expect(check(["a\r", "", "\n"])).toBe(true);
    expect(check(["a", "\n"])).toBe(false);
  });
  test("finish fails when the message ends with a pending CR", () => {
    expect(check(["a\r"])).toBe(false);
  });
  test("scan honours start and end", () => {
    const c = new BareNewlineCheck();
    const buf = enc.encode("\nab\r\n\n");
    expect(c.scan(buf, 1, 5)).toBe(true);
    expect(c.finish()).toBe(true);
  });
  test("reset forgets a pending CR", () => {
    const c = new BareNewlineCheck();
    expect(c.scan(enc.encode("a\r"), 0, 2)).toBe(true);
    c.reset();
    expect(c.scan(enc.encode("b"), 0, 1)).toBe(true);
    expect(c.finish()).toBe(true);
  });
});
