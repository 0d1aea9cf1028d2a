import { describe, expect, test } from "vitest";
import { SRS_MAX_AGE_DAYS, srsForward, srsReverse } from "./srs.ts";

const DAY = 86_400_000;
/** postsrsd's test clock and secret (tests/unit/test_srs2.c, tests/blackbox/socketmap.py): 2020-01-01 00:01:00 UTC. */
const PSRS_NOW = 1577836860_000;
const PSRS_SECRET = "tops3cr3t";
const SECRET = "s3cret-for-tests";
const NOW = Date.UTC(2026, 4, 17, 12);

describe("SRS0 as libsrs2/postsrsd write it", () => {
  test("forward matches postsrsd's published vectors (hash, base64url, timestamp)", () => {
    expect(srsForward(PSRS_SECRET, "example.com", "test@otherdomain.com", PSRS_NOW)).toBe("SRS0=vmyz=2W=otherdomain.com=test@example.com");
    expect(srsForward(PSRS_SECRET, "example.com", "hash234@somedomain.com", PSRS_NOW)).toBe("SRS0=-3_5=2W=somedomain.com=hash234@example.com");
  });

  test("reverse reads postsrsd's addresses in any case, and the +/ base64 alphabet of libsrs2", () => {
    const r = (a: string): unknown => srsReverse(PSRS_SECRET, a, PSRS_NOW);
    expect(r("SRS0=XjO9=2V=otherdomain.com=test@example.com")).toEqual({ ok: true, address: "test@otherdomain.com" });
    expect(r("srs0=xjo9=2v=otherdomain.com=test@example.com")).toEqual({ ok: true, address: "test@otherdomain.com" });
    expect(r("SRS0=XJO9=2V=OTHERDOMAIN.COM=TEST@EXAMPLE.COM")).toEqual({ ok: true, address: "TEST@OTHERDOMAIN.COM" });
    expect(r("SRS0=+3/5=2W=somedomain.com=hash234@example.com")).toEqual({ ok: true, address: "hash234@somedomain.com" });
    expect(r("SRS0=te87=T7=otherdomain.com=test@example.com")).toEqual({ ok: false, reason: "expired" });
    // A timestamp "in the future" has wrapped round the 1024 days: old.
    expect(r("SRS0=VcIb=7N=otherdomain.com=test@example.com")).toEqual({ ok: false, reason: "expired" });
    expect(r("SRS0=FAKE=2V=otherdomain.com=test@example.com")).toEqual({ ok: false, reason: "forged" });
  });
});

describe("srsForward / srsReverse", () => {
  test("round trip", () => {
    const a = srsForward(SECRET, "example.test", "sender@elsewhere.test", NOW)!;
    expect(a).toMatch(/^SRS0=[A-Za-z0-9_-]{4}=[A-Z2-7]{2}=elsewhere\.test=sender@example\.test$/);
    expect(srsReverse(SECRET, a, NOW)).toEqual({ ok: true, address: "sender@elsewhere.test" });
  });

  test("case-insensitive: prefix, hash, timestamp and domain; the local part comes back as written", () => {
    const a = srsForward(SECRET, "example.test", "Sender@ElseWhere.test", NOW)!;
    expect(srsReverse(SECRET, a.toLowerCase(), NOW)).toEqual({ ok: true, address: "sender@elsewhere.test" });
    expect(srsReverse(SECRET, a.toUpperCase(), NOW)).toEqual({ ok: true, address: "SENDER@ELSEWHERE.TEST" });
    expect(srsReverse(SECRET, a, NOW)).toEqual({ ok: true, address: "Sender@ElseWhere.test" });
  });

  test("the separator after SRS0 may be = + or -", () => {
    const a = srsForward(SECRET, "example.test", "s@elsewhere.test", NOW)!;
    for (const sep of ["+", "-"]) expect(srsReverse(SECRET, `SRS0${sep}${a.slice(5)}`, NOW)).toEqual({ ok: true, address: "s@elsewhere.test" });
  });

  test("a forged hash, another secret, a changed domain or local part: forged", () => {
    const a = srsForward(SECRET, "example.test", "sender@elsewhere.test", NOW)!;
    const hash = a.slice(5, 9);
    const other = hash[0] === "A" ? "B" : "A";
    expect(srsReverse(SECRET, `SRS0=${other}${a.slice(6)}`, NOW)).toEqual({ ok: false, reason: "forged" });
    expect(srsReverse("another secret", a, NOW)).toEqual({ ok: false, reason: "forged" });
    expect(srsReverse(SECRET, a.replace("elsewhere.test", "evil.test"), NOW)).toEqual({ ok: false, reason: "forged" });
    expect(srsReverse(SECRET, a.replace("=sender@", "=victim@"), NOW)).toEqual({ ok: false, reason: "forged" });
  });

  test("malformed after the prefix: forged; no prefix (or SRS1): not-srs", () => {
    for (const a of ["SRS0=@x.test", "SRS0=abcd=AA@x.test", "SRS0=abcd=AA=d.test@x.test", "SRS0=abcd=AA==l@x.test", "SRS0=abc=AA=d.test=l@x.test"]) {
      expect(srsReverse(SECRET, a, NOW), a).toEqual({ ok: false, reason: "forged" });
    }
    for (const a of ["sender@x.test", "SRS0@x.test", "SRS0xabcd=AA=d=l@x.test", "SRS1=abcd=d.test==SRS0=x@x.test", ""]) {
      expect(srsReverse(SECRET, a, NOW), a).toEqual({ ok: false, reason: "not-srs" });
    }
  });

  test(`valid for ${SRS_MAX_AGE_DAYS} days, expired on day ${SRS_MAX_AGE_DAYS} + 1`, () => {
    const a = srsForward(SECRET, "example.test", "sender@elsewhere.test", NOW)!;
    expect(srsReverse(SECRET, a, NOW + SRS_MAX_AGE_DAYS * DAY)).toEqual({ ok: true, address: "sender@elsewhere.test" });
    expect(srsReverse(SECRET, a, NOW + (SRS_MAX_AGE_DAYS + 1) * DAY)).toEqual({ ok: false, reason: "expired" });
    // The day number wraps at 1024: an address from 1024 days ago reads as today's (libsrs2 does the same).
    expect(srsReverse(SECRET, a, NOW + 1023 * DAY)).toEqual({ ok: false, reason: "expired" });
  });

  test("a local part with = and + comes back whole", () => {
    for (const sender of ["a=b@elsewhere.test", "user+tag@elsewhere.test", "x=y+z=@elsewhere.test", "bounces+123=abc=example.org@lists.test"]) {
      const a = srsForward(SECRET, "example.test", sender, NOW)!;
      expect(srsReverse(SECRET, a, NOW), a).toEqual({ ok: true, address: sender });
    }
  });

  test("a local part that needs quoting stays an RFC 5321 address both ways", () => {
    const a = srsForward(SECRET, "example.test", '"john smith"@elsewhere.test', NOW)!;
    expect(a).toMatch(/^"SRS0=.{4}=..=elsewhere\.test=john smith"@example\.test$/);
    expect(srsReverse(SECRET, a, NOW)).toEqual({ ok: true, address: '"john smith"@elsewhere.test' });
  });

  test("nothing to rewrite: <>, no domain, or a result longer than a path may be", () => {
    expect(srsForward(SECRET, "example.test", "", NOW)).toBeNull();
    expect(srsForward(SECRET, "example.test", "postmaster", NOW)).toBeNull();
    expect(srsForward(SECRET, "example.test", `${"l".repeat(64)}@${"d".repeat(170)}.test`, NOW)).toBeNull();
  });

  test("an SRS0 sender of another forwarder is wrapped again and unwraps one hop at a time", () => {
    const theirs = "SRS0=abcd=AA=origin.test=user@forwarder.test";
    const ours = srsForward(SECRET, "example.test", theirs, NOW)!;
    expect(srsReverse(SECRET, ours, NOW)).toEqual({ ok: true, address: theirs });
  });
});
