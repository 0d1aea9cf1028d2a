import { describe, expect, test } from "vitest";
import { cidrContains, parseCidr, parseIp } from "./cidr.ts";

const inNet = (net: string, ip: string): boolean => {
  const c = parseCidr(net);
  const a = parseIp(ip);
  if (!c || !a) throw new Error(`unparsable: ${net} / ${ip}`);
  return cidrContains(c, a);
};

describe("parseIp", () => {
  test("IPv4 dotted quad", () => {
    expect([...parseIp("192.0.2.7")!]).toEqual([192, 0, 2, 7]);
  });

  test("IPv6, compressed and full, with a zone index", () => {
    expect(parseIp("::1")).toEqual(new Uint8Array([...Array(15).fill(0), 1]));
    expect(parseIp("2001:db8:0:0:0:0:0:1")).toEqual(parseIp("2001:db8::1"));
    expect(parseIp("fe80::1%eth0")).toEqual(parseIp("fe80::1"));
  });

  test("IPv4-mapped IPv6 (::ffff:127.0.0.1, as a dual-stack socket reports it) is read as IPv4", () => {
    expect([...parseIp("::ffff:127.0.0.1")!]).toEqual([127, 0, 0, 1]);
    expect([...parseIp("::FFFF:7f00:1")!]).toEqual([127, 0, 0, 1]);
  });

  test("garbage is null", () => {
    for (const s of ["", "1.2.3", "1.2.3.256", "1.2.3.4.5", "a.b.c.d", "1::2::3", "12345::", "::g", "1:2:3:4:5:6:7:8:9"]) {
      expect(parseIp(s), s).toBeNull();
    }
  });
});

describe("parseCidr", () => {
  test("a bare address is a host network (/32, /128)", () => {
    expect(parseCidr("10.1.2.3")!.prefix).toBe(32);
    expect(parseCidr("::1")!.prefix).toBe(128);
  });

  test("prefixes outside 0..32 / 0..128 or not decimal are refused", () => {
    for (const s of ["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8x", "::/129", "10.0.0.0/0x8", "nonsense/8"]) {
      expect(parseCidr(s), s).toBeNull();
    }
  });
});

describe("cidrContains", () => {
  test("IPv4 networks: /8, /24, odd prefixes, /0 and /32", () => {
    expect(inNet("127.0.0.0/8", "127.0.0.1")).toBe(true);
    expect(inNet("127.0.0.0/8", "127.255.255.254")).toBe(true);
    expect(inNet("127.0.0.0/8", "128.0.0.1")).toBe(false);
    expect(inNet("192.0.2.0/24", "192.0.2.200")).toBe(true);
    expect(inNet("192.0.2.0/24", "192.0.3.1")).toBe(false);
    expect(inNet("10.0.0.0/13", "10.7.255.255")).toBe(true);
    expect(inNet("10.0.0.0/13", "10.8.0.0")).toBe(false);
    expect(inNet("0.0.0.0/0", "203.0.113.9")).toBe(true);
    expect(inNet("203.0.113.9/32", "203.0.113.9")).toBe(true);
    expect(inNet("203.0.113.9/32", "203.0.113.8")).toBe(false);
  });

  test("IPv6 networks", () => {
    expect(inNet("2001:db8::/32", "2001:db8:ffff::1")).toBe(true);
    expect(inNet("2001:db8::/32", "2001:db9::1")).toBe(false);
    expect(inNet("::1/128", "::1")).toBe(true);
    expect(inNet("::1/128", "::2")).toBe(false);
    expect(inNet("fe80::/10", "febf::1")).toBe(true);
    expect(inNet("fe80::/10", "fec0::1")).toBe(false);
  });

  test("an IPv4-mapped client address matches IPv4 networks, and a mapped network matches IPv4 clients", () => {
    expect(inNet("127.0.0.0/8", "::ffff:127.0.0.1")).toBe(true);
    expect(inNet("10.0.0.0/8", "::ffff:127.0.0.1")).toBe(false);
    expect(inNet("::ffff:127.0.0.1", "127.0.0.1")).toBe(true);
  });

  test("families never match each other (an IPv6 /0 does not cover IPv4)", () => {
    expect(inNet("::/0", "127.0.0.1")).toBe(false);
    expect(inNet("0.0.0.0/0", "::1")).toBe(false);
  });
});
