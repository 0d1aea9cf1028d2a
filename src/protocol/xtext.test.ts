import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { decodeXtext, encodeXtext, isXtext } from "./xtext.ts";

describe("xtext (RFC 3461 §4)", () => {
  test("encodes +, =, space, controls and non-ASCII as +XX upper-case hex", () => {
    expect(encodeXtext("a+b=c d")).toBe("a+2Bb+3Dc+20d");
    expect(encodeXtext("\u00e9")).toBe("+C3+A9");
    expect(encodeXtext("user@example.com")).toBe("user@example.com");
  });
  test("decodes hexchars; lower-case hex accepted", () => {
    expect(decodeXtext("a+2Bb+3dc")).toBe("a+b=c");
    expect(decodeXtext("+C3+A9")).toBe("\u00e9");
  });
  test("rejects malformed xtext", () => {
    for (const s of ["a=b", "a+", "a+2", "a+G0", "a b", "\u00e9", "+FF"]) expect(decodeXtext(s)).toBeNull();
    expect(isXtext("a=b")).toBe(false);
    expect(isXtext("<>")).toBe(true);
    expect(isXtext("")).toBe(true);
  });
  test("decode(encode(s)) is s for any string", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => decodeXtext(encodeXtext(s)) === s));
  });
});
