import { describe, expect, test } from "vitest";
import { findCrlf, MAX_AUTH_LINE, MAX_COMMAND_LINE } from "./line.ts";

const b = (s: string) => new TextEncoder().encode(s);

describe("findCrlf", () => {
  test("returns the index of the LF of the first CR LF", () => {
    expect(findCrlf(b("NOOP\r\nQUIT\r\n"), 0, 12)).toBe(5);
  });
  test("searches from `from` on, the CR at `from` counts", () => {
    const buf = b("NOOP\r\nQUIT\r\n");
    expect(findCrlf(buf, 4, 12)).toBe(5);
    expect(findCrlf(buf, 5, 12)).toBe(11);
    expect(findCrlf(buf, 6, 12)).toBe(11);
  });
  test("a bare LF is not a line end (RFC 5321 §2.3.8)", () => {
    expect(findCrlf(b("NOOP\nRSET\r\n"), 0, 11)).toBe(10);
    expect(findCrlf(b("NOOP\n"), 0, 5)).toBe(-1);
    expect(findCrlf(b("\n\n\n"), 0, 3)).toBe(-1);
  });
  test("a bare CR is not a line end", () => {
    expect(findCrlf(b("NOOP\rRSET"), 0, 9)).toBe(-1);
  });
  test("respects `end`: a CRLF at or past end is not found", () => {
    const buf = b("NOOP\r\n");
    expect(findCrlf(buf, 0, 5)).toBe(-1);
    expect(findCrlf(buf, 0, 6)).toBe(5);
  });
  test("an LF at index from (its CR before from) is not taken", () => {
    const buf = b("A\r\nB\r\n");
    expect(findCrlf(buf, 2, 6)).toBe(5);
  });
  test("empty window and empty buffer give -1", () => {
    expect(findCrlf(new Uint8Array(0), 0, 0)).toBe(-1);
    expect(findCrlf(b("\r\n"), 0, 0)).toBe(-1);
    expect(findCrlf(b("\r\n"), 0, 2)).toBe(1);
  });
  test("limits: 1000 octets per command line, 12288 per AUTH line", () => {
    expect(MAX_COMMAND_LINE).toBe(1000);
    expect(MAX_AUTH_LINE).toBe(12288);
  });
});
