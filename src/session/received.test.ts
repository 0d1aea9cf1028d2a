import { describe, expect, test } from "vitest";
import fc from "fast-check";
import {
  foldLongLines,
  receivedFromPrefix,
  receivedHeader,
  receivedPrefix,
  rfc5322Date,
  rfc5322DateAt,
  shownName,
} from "./received.ts";

const base = {
  helo: "client.example",
  clientAddress: "192.0.2.7",
  hostname: "mx.example.test",
  esmtp: true,
  tls: undefined,
  authenticated: false,
  utf8: false,
  id: "Q1",
  singleRecipient: "bob@example.test",
  date: new Date(Date.UTC(2026, 10, 28, 16, 5, 7, 450)),
};

describe("Received field (RFC 5321 §4.4)", () => {
  test("the exact field: from, address literal, by, with, id, for, date", () => {
    expect(receivedHeader(base)).toBe(
      "Received: from client.example ([192.0.2.7])\r\n" +
        "\tby mx.example.test (ringmta) with ESMTP id Q1\r\n\tfor <bob@example.test>;\r\n" +
        "\tSat, 28 Nov 2026 16:05:07 +0000\r\n",
    );
  });

  test("TLS, AUTH, SMTPUTF8, IPv6 and a hostile HELO", () => {
    const h = receivedHeader({
      ...base,
      helo: "evil (x)\r\nX-Injected: 1",
      clientAddress: "2001:db8::1",
      tls: "TLSv1.3 TLS_AES_256_GCM_SHA384",
      authenticated: true,
      utf8: true,
      singleRecipient: undefined,
    });
    expect(h).toBe(
      "Received: from evil\\x{20}\\x{28}x\\x{29}\\x{D}\\x{A}X-Injected:\\x{20}1 ([IPv6:2001:db8::1])\r\n\t(using TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n" +
        "\tby mx.example.test (ringmta) with UTF8SMTPSA id Q1;\r\n\tSat, 28 Nov 2026 16:05:07 +0000\r\n",
    );
  });

  test("a prefix made once serves every message of the session", () => {
    const prefix = receivedPrefix(base);
    for (const id of ["A", "B"]) {
      expect(receivedFromPrefix(prefix, id, "bob@example.test", base.date.getTime())).toBe(receivedHeader({ ...base, id }));
    }
  });

  test("the date text is kept per second and follows the clock", () => {
    const t = Date.UTC(2026, 0, 1, 23, 59, 59, 999);
    expect(rfc5322DateAt(t)).toBe("Thu, 1 Jan 2026 23:59:59 +0000");
    expect(rfc5322DateAt(t - 998)).toBe("Thu, 1 Jan 2026 23:59:59 +0000");
    expect(rfc5322DateAt(t + 1)).toBe("Fri, 2 Jan 2026 00:00:00 +0000");
    for (const ms of [0, 1_700_000_000_123, t + 86_400_000 * 40]) expect(rfc5322DateAt(ms)).toBe(rfc5322Date(new Date(ms)));
  });
});

/** What RFC 5322 §2.1.1 and the CONTRACT ask of every field we add. */
function checkField(h: string, utf8: boolean): void {
  expect(h.endsWith("\r\n")).toBe(true);
  const lines = h.slice(0, -2).split("\r\n");
  for (const [k, line] of lines.entries()) {
    expect(new TextEncoder().encode(line).length, `line ${k} of ${JSON.stringify(h)}`).toBeLessThanOrEqual(998);
    if (k > 0) expect(line[0] === " " || line[0] === "\t", `continuation ${k}`).toBe(true);
    // No control character but the TAB of folding; no format/bidi characters or separators; 8-bit only with SMTPUTF8.
    expect(/[\x00-\x08\x0a-\x1f\x7f\p{Cf}\p{Zl}\p{Zp}]/u.test(line), JSON.stringify(line)).toBe(false);
    if (!utf8) expect(/[^\x00-\x7f]/.test(line), JSON.stringify(line)).toBe(false);
  }
  expect(h.indexOf(";")).toBe(h.lastIndexOf(";")); // the one ";" before the date: no name adds another
}

describe("Received field: hostile and long EHLO names (issue 15 #7)", () => {
  const hostile = [
    "héllo",
    "h\u202Eevil",
    "line\u2028sep",
    "para\u2029x",
    "zero\u200Bwidth",
    "a;b",
    "x(y)",
    "back\\slash",
    "tab\there",
    "nul\u0000x",
    "del\u007f",
    "a".repeat(990),
    "é".repeat(500),
    "\u202E".repeat(330),
    "-leading.hyphen",
    "[300.1.1.1x]",
  ];
  for (const utf8 of [false, true]) {
    test(`escaped ASCII forms, lines at most 998 octets (SMTPUTF8 ${utf8})`, () => {
      for (const helo of hostile) {
        const h = receivedHeader({ ...base, helo, utf8 });
        checkField(h, utf8);
        const shown = shownName(helo, utf8);
        expect(shown.length).toBeLessThanOrEqual(258);
        if (!(utf8 && helo === "héllo")) expect(/^[\x21-\x7e]+$/.test(shown), shown).toBe(true);
      }
    });
  }
  test("valid names stand as they are; an IDN only with SMTPUTF8", () => {
    for (const n of ["mail.example.com", "a-b.c", "[192.0.2.1]", "[IPv6:2001:db8::1]", "x"]) {
      expect(shownName(n, false)).toBe(n);
    }
    expect(shownName("héllo.example", true)).toBe("héllo.example");
    expect(shownName("héllo.example", false)).toBe("h\\x{E9}llo.example");
    expect(shownName("a\u202Eb.example", true)).toBe("a\\x{202E}b.example");
  });
  test("the escaped form keeps distinct names distinct (no two spellings collapse)", () => {
    expect(shownName("a b", false)).not.toBe(shownName("a?b", false));
    expect(shownName("a\\x{20}b", false)).not.toBe(shownName("a b", false));
  });
  test("issue 15: a 990-character EHLO gives no line over 998 octets", () => {
    const h = receivedHeader({ ...base, helo: "x".repeat(990) + "!" });
    checkField(h, false);
  });
  test("any EHLO argument and recipient (fast-check)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 1000 }), fc.boolean(), (helo, utf8) => {
        checkField(receivedHeader({ ...base, helo: helo === "" ? "x" : helo, utf8 }), utf8);
      }),
      { numRuns: 300 },
    );
  });
  test("foldLongLines folds at white space, cuts only when there is none", () => {
    const long = "Received: " + "word ".repeat(400) + "\r\n";
    const f = foldLongLines(long);
    checkField(f, false);
    expect(f.replace(/\r\n(?=[ \t])/g, "")).toBe(long);
    const solid = "X: " + "y".repeat(2500) + "\r\n";
    checkField(foldLongLines(solid), false);
  });
});
