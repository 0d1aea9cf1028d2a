import { describe, expect, test } from "vitest";
import { DotStuffer } from "./dot-stuff.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
function stuff(chunks: string[]): { out: string; end: string } {
  const s = new DotStuffer();
  let out = "";
  for (const c of chunks) s.push(enc.encode(c), (b) => (out += dec.decode(b)));
  return { out, end: dec.decode(s.end()) };
}

describe("DotStuffer", () => {
  test("doubles a dot at the start of every line", () => {
    expect(stuff([".a\r\nb\r\n.\r\n..c\r\nd.e\r\n"]).out).toBe("..a\r\nb\r\n..\r\n...c\r\nd.e\r\n");
  });
  test("tracks line starts across chunks", () => {
    expect(stuff(["a\r\n", ".b\r", "\n", ".", "c"]).out).toBe("a\r\n..b\r\n..c");
  });
  test("end: '.' CRLF after a final CRLF, else CRLF '.' CRLF", () => {
    expect(stuff(["a\r\n"]).end).toBe(".\r\n");
    expect(stuff(["a"]).end).toBe("\r\n.\r\n");
    expect(stuff(["a\r", "\n"]).end).toBe(".\r\n");
    expect(stuff(["a\n"]).end).toBe("\r\n.\r\n");
    expect(stuff([]).end).toBe(".\r\n");
  });
  test("passes chunks without dots through as the same view", () => {
    const s = new DotStuffer();
    const chunk = enc.encode("hello\r\nworld\r\n");
    const seen: Uint8Array[] = [];
    s.push(chunk, (b) => seen.push(b));
    expect(seen).toEqual([chunk]);
    expect(seen[0]).toBe(chunk);
  });
  test("reset starts a new message at a line start", () => {
    const s = new DotStuffer();
    s.push(enc.encode("abc"), () => {});
    s.reset();
    let out = "";
    s.push(enc.encode(".x"), (b) => (out += dec.decode(b)));
    expect(out).toBe("..x");
  });
});
