/**
 * The PROXY header reader (haproxy doc/proxy-protocol.txt): known v1 and v2 headers, every way to be malformed,
 * and properties: any chunking of a valid header gives the same result and the same rest; random bytes never
 * throw and are decided within PROXY_HEADER_MAX bytes.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { formatIp, PROXY_HEADER_MAX, PROXY_V2_MAX_LENGTH, ProxyHeaderReader, type ProxyHeaderResult } from "./proxy-header.ts";

const enc = new TextEncoder();
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v2(verCmd: number, fam: number, body: number[]): Uint8Array {
  return Uint8Array.from([...SIG, verCmd, fam, body.length >> 8, body.length & 0xff, ...body]);
}

function v2Inet(src: number[], sport: number, tlvs: number[] = []): Uint8Array {
  return v2(0x21, 0x11, [...src, 10, 0, 0, 1, sport >> 8, sport & 0xff, 0, 25, ...tlvs]);
}

function v2Inet6(src: number[], sport: number): Uint8Array {
  return v2(0x21, 0x21, [...src, ...new Array(15).fill(0), 1, sport >> 8, sport & 0xff, 0, 25]);
}

function readAll(chunks: Uint8Array[]): { result: ProxyHeaderResult; reader: ProxyHeaderReader } {
  const reader = new ProxyHeaderReader();
  let result: ProxyHeaderResult = { kind: "more" };
  for (const c of chunks) {
    result = reader.push(c);
    if (result.kind !== "more") break;
  }
  return { result, reader };
}

const one = (b: Uint8Array | string): ProxyHeaderResult => readAll([typeof b === "string" ? enc.encode(b) : b]).result;
const restText = (r: ProxyHeaderResult): string => ("rest" in r ? new TextDecoder().decode(r.rest) : "");

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("PROXY v1", () => {
  test("TCP4 gives the source address and port, and the bytes after the line", () => {
    const r = one("PROXY TCP4 192.0.2.7 10.0.0.1 56324 25\r\nEHLO x\r\n");
    expect(r).toMatchObject({ kind: "proxied", version: 1, address: "192.0.2.7", port: 56324 });
    expect(restText(r)).toBe("EHLO x\r\n");
  });

  test("TCP6 addresses come out in RFC 5952 form; an IPv4-mapped one as IPv4", () => {
    expect(one("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 1 25\r\n")).toMatchObject({ address: "2001:db8::1", port: 1 });
    expect(one("PROXY TCP6 ::ffff:127.0.0.9 ::1 65535 25\r\n")).toMatchObject({ address: "127.0.0.9", port: 65535 });
    expect(one("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::1 0 0\r\n")).toMatchObject({
      address: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      port: 0,
    });
  });

  test("UNKNOWN (with or without the rest of the line) means: use the real peer", () => {
    expect(one("PROXY UNKNOWN\r\n")).toMatchObject({ kind: "local", version: 1 });
    const longest = `PROXY UNKNOWN ${"ffff:".repeat(7)}ffff ${"ffff:".repeat(7)}ffff 65535 65535\r\n`;
    expect(longest.length).toBe(107);
    expect(one(longest + "x")).toMatchObject({ kind: "local" });
    expect(one("PROXY UNKNOWN \x00\xff whatever\r\n")).toMatchObject({ kind: "local" });
    expect(one("PROXY UNKNOWNISH\r\n").kind).toBe("error");
    expect(restText(one(longest + "x"))).toBe("x");
  });

  test.each([
    ["no header at all", "EHLO client.example\r\n"],
    ["lower-case signature", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"],
    ["two spaces", "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"],
    ["bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"],
    ["unknown protocol", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"],
    ["missing field", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"],
    ["extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"],
    ["leading zero in an address", "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"],
    ["octet over 255", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"],
    ["IPv6 under TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n"],
    ["IPv4 under TCP6", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"],
    ["two ::", "PROXY TCP6 1::2::3 ::1 1 2\r\n"],
    ["port over 65535", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"],
    ["leading zero in a port", "PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n"],
    ["control byte", "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"],
  ])("refused: %s", (_what, text) => {
    expect(one(text).kind).toBe("error");
  });

  test("a line without CRLF within 107 bytes is refused at the 107th byte", () => {
    const reader = new ProxyHeaderReader();
    const long = enc.encode("PROXY UNKNOWN " + "x".repeat(200));
    let r: ProxyHeaderResult = { kind: "more" };
    for (let i = 0; i < long.length && r.kind === "more"; i++) r = reader.push(long.subarray(i, i + 1));
    expect(r.kind).toBe("error");
    expect(reader.consumed).toBe(107);
  });

  test("refused at the first byte that cannot start a header", () => {
    const reader = new ProxyHeaderReader();
    expect(reader.push(enc.encode("E")).kind).toBe("error");
    expect(reader.consumed).toBe(0);
    const r2 = new ProxyHeaderReader();
    expect(r2.push(enc.encode("PROX")).kind).toBe("more");
    expect(r2.push(enc.encode("Z")).kind).toBe("error");
  });
});

describe("PROXY v2", () => {
  test("PROXY TCP over IPv4 gives the source address and port; the rest is handed back", () => {
    const r = one(concat(v2Inet([127, 0, 0, 7], 40000), enc.encode("\x16\x03\x01")));
    expect(r).toMatchObject({ kind: "proxied", version: 2, address: "127.0.0.7", port: 40000 });
    expect(Array.from((r as { rest: Uint8Array }).rest)).toEqual([0x16, 0x03, 0x01]);
  });

  test("IPv6 source", () => {
    expect(one(v2Inet6([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 5], 2525))).toMatchObject({
      address: "2001:db8::5",
      port: 2525,
    });
  });

  test("TLVs after the addresses are skipped", () => {
    const tlvs = [0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x03, 0, 0, 0]; // ALPN "h2", NOOP
    const r = one(concat(v2Inet([192, 0, 2, 1], 1, tlvs), enc.encode("EHLO")));
    expect(r).toMatchObject({ kind: "proxied", address: "192.0.2.1", port: 1 });
    expect(restText(r)).toBe("EHLO");
  });

  test("LOCAL (a health check) means: use the real peer, whatever address block follows", () => {
    expect(one(v2(0x20, 0x00, []))).toMatchObject({ kind: "local", version: 2 });
    const r = one(concat(v2(0x20, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]), enc.encode("Q")));
    expect(r).toMatchObject({ kind: "local" });
    expect(restText(r)).toBe("Q");
  });

  test("UNSPEC, UDP and UNIX fall back to the real peer (§2.2)", () => {
    expect(one(v2(0x21, 0x00, [])).kind).toBe("local");
    expect(one(v2(0x21, 0x12, new Array(12).fill(1))).kind).toBe("local");
    expect(one(v2(0x21, 0x31, new Array(216).fill(0))).kind).toBe("local");
  });

  test.each([
    ["version 1 in the version nibble", v2(0x11, 0x11, new Array(12).fill(0))],
    ["command 2", v2(0x22, 0x11, new Array(12).fill(0))],
    ["family 4", v2(0x21, 0x41, new Array(12).fill(0))],
    ["protocol 3", v2(0x21, 0x13, new Array(12).fill(0))],
    ["length shorter than the IPv4 block", v2(0x21, 0x11, new Array(11).fill(0))],
    ["length shorter than the IPv6 block", v2(0x21, 0x21, new Array(35).fill(0))],
    ["broken signature", Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01])],
  ])("refused: %s", (_what, bytes) => {
    expect(one(bytes).kind).toBe("error");
  });

  test("a length field over the bound is refused before any address byte", () => {
    const head = Uint8Array.from([...SIG, 0x21, 0x11, (PROXY_V2_MAX_LENGTH + 1) >> 8, (PROXY_V2_MAX_LENGTH + 1) & 0xff]);
    const reader = new ProxyHeaderReader();
    expect(reader.push(head).kind).toBe("error");
    expect(reader.consumed).toBe(16);
  });

  test("a header of exactly the bound is read", () => {
    const body = [127, 0, 0, 3, 127, 0, 0, 1, 0, 9, 0, 25, 0x04, (PROXY_V2_MAX_LENGTH - 15) >> 8, (PROXY_V2_MAX_LENGTH - 15) & 0xff];
    const full = v2(0x21, 0x11, [...body, ...new Array(PROXY_V2_MAX_LENGTH - body.length).fill(0)]);
    expect(full.length).toBe(PROXY_HEADER_MAX);
    expect(one(full)).toMatchObject({ kind: "proxied", address: "127.0.0.3", port: 9 });
  });
});

describe("formatIp", () => {
  test("RFC 5952: longest zero run compressed, the first one on a tie, a single zero group kept", () => {
    const ip6 = (...g: number[]): Uint8Array => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff]));
    expect(formatIp(ip6(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1))).toBe("2001:db8::1:0:0:1");
    expect(formatIp(ip6(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1))).toBe("2001:db8:0:1:1:1:1:1");
    expect(formatIp(ip6(0, 0, 0, 0, 0, 0, 0, 0))).toBe("::");
    expect(formatIp(ip6(0, 0, 0, 0, 0, 0, 0, 1))).toBe("::1");
    expect(formatIp(ip6(1, 0, 0, 0, 0, 0, 0, 0))).toBe("1::");
  });
});

// ---- properties -----------------------------------------------------------------------------------------------

const octet = fc.integer({ min: 0, max: 255 });
const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.tuple(octet, octet, octet, octet);
const ipv6 = fc.array(octet, { minLength: 16, maxLength: 16 });

/** A valid header (v1 or v2) and what it must give. */
const validHeader = fc.oneof(
  fc.tuple(ipv4, ipv4, port, port).map(([s, d, sp, dp]) => ({
    bytes: enc.encode(`PROXY TCP4 ${s.join(".")} ${d.join(".")} ${sp} ${dp}\r\n`),
    expect: { kind: "proxied", address: s.join("."), port: sp },
  })),
  fc.tuple(ipv6, ipv6, port, port).map(([s, d, sp, dp]) => {
    const text = (b: number[]): string => formatIp(Uint8Array.from(b));
    return {
      bytes: enc.encode(`PROXY TCP6 ${text(s)} ${text(d)} ${sp} ${dp}\r\n`),
      expect: { kind: "proxied", address: text(s), port: sp },
    };
  }),
  fc.tuple(ipv4, port, fc.array(octet, { maxLength: 300 })).map(([s, sp, tlvs]) => ({
    bytes: v2Inet(s, sp, tlvs),
    expect: { kind: "proxied", address: s.join("."), port: sp },
  })),
  fc.tuple(ipv6, port).map(([s, sp]) => ({
    bytes: v2Inet6(s, sp),
    expect: { kind: "proxied", address: formatIp(Uint8Array.from(s)), port: sp },
  })),
  fc.array(octet, { maxLength: 40 }).map((junk) => ({ bytes: v2(0x20, 0x00, junk), expect: { kind: "local" } })),
);

/** Cut `bytes` at the given (sorted, deduplicated) offsets. */
function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const points = [...new Set(at.map((a) => a % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.slice(prev, p));
    prev = p;
  }
  out.push(bytes.slice(prev));
  return out;
}

describe("properties", () => {
  test("any chunking of a valid header followed by data gives the same result and the same rest", () => {
    fc.assert(
      fc.property(validHeader, fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat(), { maxLength: 12 }), (h, data, at) => {
        const whole = concat(h.bytes, data);
        const chunks = cut(whole, at);
        const reader = new ProxyHeaderReader();
        let result: ProxyHeaderResult = { kind: "more" };
        const after: number[] = [];
        for (const c of chunks) {
          if (result.kind === "more") {
            result = reader.push(c);
            if ("rest" in result) after.push(...result.rest);
          } else {
            after.push(...c);
          }
        }
        expect(result).toMatchObject(h.expect);
        expect(after).toEqual(Array.from(data));
        expect(reader.consumed).toBe(h.bytes.length);
      }),
      { numRuns: 400 },
    );
  });

  test("random bytes never throw and are decided within PROXY_HEADER_MAX bytes", () => {
    const start = fc.oneof(
      fc.constant(new Uint8Array(0)),
      fc.constant(enc.encode("PROXY ")),
      fc.constant(Uint8Array.from(SIG)),
      fc.constant(Uint8Array.from([...SIG, 0x21, 0x11])),
    );
    fc.assert(
      fc.property(start, fc.uint8Array({ maxLength: PROXY_HEADER_MAX + 200 }), fc.array(fc.nat(), { maxLength: 8 }), (s, tail, at) => {
        const reader = new ProxyHeaderReader();
        let result: ProxyHeaderResult = { kind: "more" };
        let fed = 0;
        for (const c of cut(concat(s, tail), at)) {
          result = reader.push(c);
          fed += c.length;
          if (result.kind !== "more") break;
        }
        expect(reader.consumed).toBeLessThanOrEqual(PROXY_HEADER_MAX);
        if (result.kind === "more") expect(fed).toBeLessThanOrEqual(PROXY_HEADER_MAX);
        if (result.kind === "error") expect(typeof result.reason).toBe("string");
      }),
      { numRuns: 400 },
    );
  });
});
