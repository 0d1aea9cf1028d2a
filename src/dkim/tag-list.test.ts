import { describe, expect, it } from "vitest";
import { randomText, seededRandom } from "../../test/helpers/random.ts";
import { compact, parseTagList } from "./tag-list.ts";

/** The split-based reading parseTagList replaced (RFC 6376 §3.2 as mailauth's strict mode reads it). */
function splitReading(text: string): { tags: Map<string, string>; names: string[]; invalid: boolean } {
  const tags = new Map<string, string>();
  const names: string[] = [];
  let invalid = false;
  const segments = text.split(";");
  const trim = (s: string): string => s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const eq = segment.indexOf("=");
    if (eq < 0) {
      if (trim(segment) !== "" || i < segments.length - 1 || segments.length === 1) invalid = true;
      continue;
    }
    const name = trim(segment.slice(0, eq));
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name) || tags.has(name)) invalid = true;
    tags.set(name, segment.slice(eq + 1).replace(/\s+/g, " ").trim());
    names.push(name);
  }
  return { tags, names, invalid };
}

describe("parseTagList", () => {
  it("reads a folded DKIM-Signature value", () => {
    const r = parseTagList("v=1; a=rsa-sha256; d=x.test;\r\n\ts=sel; b=ab\r\n\t cd ==;");
    expect(r.invalid).toBe(false);
    expect(r.names).toEqual(["v", "a", "d", "s", "b"]);
    expect(r.tags.get("b")).toBe("ab cd ==");
  });

  it("finds syntax errors: duplicates, bad names, parts without '=', empty tag-specs but a trailing one", () => {
    expect(parseTagList("a=1; a=2").invalid).toBe(true);
    expect(parseTagList("1a=1").invalid).toBe(true);
    expect(parseTagList("a=1; junk").invalid).toBe(true);
    expect(parseTagList("a=1;; b=2").invalid).toBe(true);
    expect(parseTagList("a=1;").invalid).toBe(false);
    expect(parseTagList("").invalid).toBe(true);
  });

  it("reads every list as the split-based reading does (random lists)", () => {
    const alphabet = ["a", "B", "_", "1", "=", "=", ";", ";", " ", "\t", "\r\n", "\r\n\t", "\u00a0", "\u3000", "x", "é"];
    const rand = seededRandom(11);
    for (let t = 0; t < 30000; t++) {
      const text = randomText(rand, alphabet, 30);
      const got = parseTagList(text);
      const want = splitReading(text);
      expect({ tags: [...got.tags], names: got.names, invalid: got.invalid }, JSON.stringify(text)).toEqual({
        tags: [...want.tags],
        names: want.names,
        invalid: want.invalid,
      });
    }
  });

  it("reads 200,000 empty tag-specs (a search for '=' per tag-spec would take minutes: the test's timeout)", () => {
    expect(parseTagList(";".repeat(200_000)).invalid).toBe(true);
    expect(parseTagList(`${";".repeat(200_000)}a=1`).tags.get("a")).toBe("1");
  });
});

describe("compact", () => {
  it("removes every whitespace character, ASCII or not", () => {
    expect(compact("ab cd\r\n\tef")).toBe("abcdef");
    expect(compact("a\u00a0b c")).toBe("abc");
    expect(compact("abc")).toBe("abc");
    expect(compact(undefined)).toBe("");
  });

  it("agrees with a regex over random values", () => {
    const alphabet = ["a", "=", " ", "\t", "\n", "\v", "\f", "\r", "\u00a0", "\u2028", "+", "/"];
    const rand = seededRandom(5);
    for (let t = 0; t < 20000; t++) {
      const v = randomText(rand, alphabet, 20);
      expect(compact(v), JSON.stringify(v)).toBe(v.replace(/\s+/g, ""));
    }
  });
});
