import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { carriesAuthservId, HOLD_MAX, OwnAuthResultsFilter } from "./auth-results-filter.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs `msg` through a filter in the given chunk sizes and returns what was kept. */
function filter(msg: string, id: string, sizes: number[] = []): string {
  const f = new OwnAuthResultsFilter(id);
  const bytes = enc.encode(msg);
  let out = "";
  const keep = (b: Uint8Array): void => {
    out += dec.decode(b);
  };
  let i = 0;
  for (const s of sizes) {
    if (i >= bytes.length) break;
    f.feed(bytes.subarray(i, i + s), keep);
    i += s;
  }
  if (i < bytes.length) f.feed(bytes.subarray(i), keep);
  f.finish(keep);
  return out;
}

const ID = "mx.example.test";
const OURS = "Authentication-Results: MX.Example.TEST; spf=pass smtp.mailfrom=a@evil.test\r\n";
const OURS_FOLDED = "Authentication-Results: (forged)\r\n mx.example.test 1;\r\n\tdkim=pass header.d=bank.test\r\n";
const THEIRS = "Authentication-Results: mx.other.test; dkim=fail\r\n";
const HEAD = "From: a@b.test\r\nTo: c@d.test\r\n";
const BODY = "\r\nAuthentication-Results: mx.example.test; spf=pass\r\nbody line\r\n";

describe("carriesAuthservId (RFC 8601 §2.2)", () => {
  test.each([
    [" mx.example.test; spf=pass", true],
    [" MX.EXAMPLE.TEST;spf=pass", true],
    [" mx.example.test 1; none", true],
    [' "mx.example.test"; none', true],
    [" (comment (nested)) mx.example.test; none", true],
    ["\r\n\tmx.example.test;\r\n dkim=none", true],
    [" mx.example.test.evil; none", false],
    [" evil.mx.example.test; none", false],
    [" mx.other.test; spf=pass smtp.mailfrom=mx.example.test", false],
    ["", false],
    [" ; none", false],
  ])("%j → %s", (value, expected) => {
    expect(carriesAuthservId(value, ID)).toBe(expected);
  });
});

describe("OwnAuthResultsFilter", () => {
  test("removes fields with our authserv-id, folded or not, and keeps everyone else's and the body", () => {
    const msg = OURS + HEAD + OURS_FOLDED + THEIRS + "Subject: x\r\n" + BODY;
    expect(filter(msg, ID)).toBe(HEAD + THEIRS + "Subject: x\r\n" + BODY);
  });
  test("obs-optional WSP before the colon is the same field name (RFC 5322 §4.5.3)", () => {
    expect(filter("authentication-results \t: mx.example.test; none\r\n" + HEAD + BODY, ID)).toBe(HEAD + BODY);
  });
  test("a field whose name only starts the same is kept", () => {
    const msg = "Authentication-Results-Original: mx.example.test; none\r\nAuthentication: mx.example.test\r\n" + HEAD + BODY;
    expect(filter(msg, ID)).toBe(msg);
  });
  test("a message without a body, ending in our field, loses it at finish", () => {
    expect(filter(HEAD + OURS, ID)).toBe(HEAD);
    expect(filter(HEAD + "Authentication-Res", ID)).toBe(HEAD + "Authentication-Res");
  });
  test("a huge field is decided on its beginning and never held whole", () => {
    const big = "Authentication-Results: mx.example.test; x=" + "a".repeat(HOLD_MAX * 4) + "\r\n";
    const bigTheirs = "Authentication-Results: other.test; x=" + "\r\n b".repeat(HOLD_MAX) + "\r\n";
    const f = new OwnAuthResultsFilter(ID);
    let kept = 0;
    f.feed(enc.encode(big + bigTheirs + HEAD), (b) => (kept += b.length));
    expect(f["heldLen"]).toBeLessThanOrEqual(HOLD_MAX + 2);
    f.feed(enc.encode(BODY), (b) => (kept += b.length));
    f.finish((b) => (kept += b.length));
    expect(kept).toBe(enc.encode(bigTheirs + HEAD + BODY).length);
  });
  test("any chunking gives the same result", () => {
    const msg = HEAD + OURS + THEIRS + OURS_FOLDED + "X-A: 1\r\n  2\r\n" + OURS + BODY;
    const want = filter(msg, ID);
    expect(want).toBe(HEAD + THEIRS + "X-A: 1\r\n  2\r\n" + BODY);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 60 }), (sizes) => {
        expect(filter(msg, ID, sizes)).toBe(want);
      }),
      { numRuns: 300 },
    );
  });
  test("reset() starts a new message", () => {
    const f = new OwnAuthResultsFilter(ID);
    let out = "";
    f.feed(enc.encode(HEAD + "Authentication-Results: mx.exa"), (b) => (out += dec.decode(b)));
    f.reset();
    out = "";
    f.feed(enc.encode(OURS + HEAD + BODY), (b) => (out += dec.decode(b)));
    f.finish((b) => (out += dec.decode(b)));
    expect(out).toBe(HEAD + BODY);
  });
});
