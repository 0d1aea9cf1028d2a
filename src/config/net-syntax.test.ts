import { describe, expect, test } from "vitest";
import { isAddress, isDnsServer, isDomainName, isIPv4, isIPv6, normalizeCidr, splitHostPort } from "./net-syntax.ts";

describe("IP addresses", () => {
  test("IPv4 dotted quads, no leading zeros", () => {
    for (const s of ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.1.2.3"]) expect(isIPv4(s), s).toBe(true);
    for (const s of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", ""]) expect(isIPv4(s), s).toBe(false);
  });
  test("IPv6 full, compressed and with an IPv4 tail (RFC 4291 §2.2)", () => {
    for (const s of ["::", "::1", "fe80::1", "2001:db8:0:0:0:0:0:1", "2001:DB8::", "::ffff:192.0.2.1", "1:2:3:4:5:6:1.2.3.4"])
      expect(isIPv6(s), s).toBe(true);
    for (const s of [":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ":1::", "1.2.3.4::", "1:2:3:4:5:6:7::8:9", "fe80::1%eth0"])
      expect(isIPv6(s), s).toBe(false);
  });
});

describe("normalizeCidr", () => {
  test("keeps valid blocks and gives bare addresses a full-length prefix", () => {
    expect(normalizeCidr("127.0.0.0/8")).toBe("127.0.0.0/8");
    expect(normalizeCidr("::1/128")).toBe("::1/128");
    expect(normalizeCidr("10.0.0.0/032")).toBe("10.0.0.0/32");
    expect(normalizeCidr("192.0.2.7")).toBe("192.0.2.7/32");
    expect(normalizeCidr("2001:db8::")).toBe("2001:db8::/128");
  });
  test("rejects over-long prefixes and non-addresses", () => {
    for (const s of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/a", "example.test/8", "/8", ""])
      expect(normalizeCidr(s), s).toBeNull();
  });
});

describe("names and addresses", () => {
  test("domain names per RFC 1123", () => {
    for (const s of ["localhost", "mx.example.test", "a-b.c0", "xn--bcher-kva.example", "1.2.3.4"]) expect(isDomainName(s), s).toBe(true);
    for (const s of ["", "-a.test", "a-.test", "a..b", "a.test.", "a_b.test", "x".repeat(64) + ".test", "a b"])
      expect(isDomainName(s), s).toBe(false);
  });
  test("addresses are dot-atom@domain, UTF-8 local parts allowed", () => {
    for (const s of ["alice@example.test", "a.b+tag@x.test", "Ünïcode@x.test", "postmaster@localhost"]) expect(isAddress(s), s).toBe(true);
    for (const s of ["alice", "@x.test", "alice@", "a..b@x.test", ".a@x.test", "a b@x.test", "a@b@x.test", `${"a".repeat(65)}@x.test`, "a@-x.test"])
      expect(isAddress(s), s).toBe(false);
  });
});

describe("splitHostPort", () => {
  test("splits host names, IPv4 and bracketed IPv6", () => {
    expect(splitHostPort("127.0.0.1:2600")).toEqual({ host: "127.0.0.1", port: 2600 });
    expect(splitHostPort("smtp.example.test:587")).toEqual({ host: "smtp.example.test", port: 587 });
    expect(splitHostPort("[::1]:25")).toEqual({ host: "::1", port: 25 });
  });
  test("port 0 only when allowed", () => {
    expect(splitHostPort("127.0.0.1:0")).toBeNull();
    expect(splitHostPort("127.0.0.1:0", true)).toEqual({ host: "127.0.0.1", port: 0 });
  });
  test("rejects missing ports, bad ports, bare IPv6 and bad hosts", () => {
    for (const s of ["127.0.0.1", "127.0.0.1:", "host:65536", "host:-1", "host:2a", "::1:25", "[::1]", "[x]:25", "bad_host:25", ":25"])
      expect(splitHostPort(s), s).toBeNull();
  });
  test("DNS servers are an IP with an optional port", () => {
    for (const s of ["127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53"]) expect(isDnsServer(s), s).toBe(true);
    for (const s of ["ns.example.test", "ns.example.test:53", "127.0.0.1:0", "1.2.3.4:x"]) expect(isDnsServer(s), s).toBe(false);
  });
});
