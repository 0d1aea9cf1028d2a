import { describe, expect, test } from "vitest";
import { receivedFromPrefix, receivedHeader, receivedPrefix, rfc5322Date, rfc5322DateAt } from "./received.ts";

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
      "Received: from evil??x???X-Injected:?1 ([IPv6:2001:db8::1])\r\n\t(using TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n" +
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
