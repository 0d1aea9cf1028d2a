import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { parseCommand } from "../protocol/index.ts";
import { foldLocalPart, formatPath, isDotString, mailboxText, quoteLocalPart, splitAddress } from "./address.ts";

const enc = new TextEncoder();

/** What our own parser makes of `RCPT TO:<path>`: the RFC 5321 reading every next hop will do too. */
function parsePath(path: string): { localPart: string; domain: string; address: string } | null {
  const r = parseCommand(enc.encode(`RCPT TO:<${path}>`));
  if (!r.ok || r.command.verb !== "RCPT") return null;
  return r.command.path;
}

/** Every printable ASCII character (the specials of RFC 5322 §3.2.3 among them) and some UTF-8. */
const special = fc.constantFrom(..."\"\\ ()<>[]:;@,.!#$%&'*+-/=?^_`{|}~aZ09", "é", "ü", "中", "😀");
const localPart = fc
  .array(fc.oneof(special, fc.integer({ min: 32, max: 126 }).map((c) => String.fromCharCode(c))), { minLength: 0, maxLength: 40 })
  .map((a) => a.join(""));
const domain = fc.constantFrom("remote.test", "localhost", "a.b.example", "[192.0.2.1]", "[IPv6:2001:db8::1]");

describe("formatPath / quoteLocalPart (RFC 5321 §4.1.2)", () => {
  test("the issue's examples keep their quotes", () => {
    expect(formatPath("x@evil.test", "remote.test")).toBe('"x@evil.test"@remote.test');
    expect(formatPath("a b", "remote.test")).toBe('"a b"@remote.test');
    expect(formatPath("y>", "remote.test")).toBe('"y>"@remote.test');
    expect(formatPath('q"z', "remote.test")).toBe('"q\\"z"@remote.test');
    expect(formatPath("x>y", "localhost")).toBe('"x>y"@localhost');
    expect(formatPath("back\\slash", "d")).toBe('"back\\\\slash"@d');
  });
  test("a Dot-string is not quoted; dots only between atoms", () => {
    expect(formatPath("first.last+tag", "d")).toBe("first.last+tag@d");
    expect(formatPath("josé", "d")).toBe("josé@d");
    for (const lp of [".a", "a.", "a..b", "", "a b"]) expect(quoteLocalPart(lp)).toBe(`"${lp}"`);
    expect(formatPath("", "")).toBe("");
    expect(formatPath("postmaster", "")).toBe("postmaster");
  });
  test("round trip: parse(format(localPart, domain)) gives the same parts (fast-check)", () => {
    fc.assert(
      fc.property(localPart, domain, (lp, d) => {
        const path = formatPath(lp, d);
        const parsed = parsePath(path);
        expect(parsed, path).not.toBeNull();
        expect(parsed!.localPart).toBe(lp);
        expect(parsed!.domain).toBe(d);
        // The stored address (as given) written out again is the same text, and splits into the same parts.
        expect(mailboxText(parsed!.address)).toBe(path);
        expect(splitAddress(path)).toEqual({ localPart: lp, domain: d });
        expect(isDotString(lp)).toBe(!path.startsWith('"'));
      }),
      { numRuns: 2000 },
    );
  });
  test("mailboxText is idempotent and repairs an address stored without quotes", () => {
    expect(mailboxText("x@evil.test@remote.test")).toBe('"x@evil.test"@remote.test');
    expect(mailboxText('"x@evil.test"@remote.test')).toBe('"x@evil.test"@remote.test');
    expect(mailboxText('"plain"@d')).toBe("plain@d");
    expect(mailboxText("")).toBe("");
    fc.assert(
      fc.property(localPart, domain, (lp, d) => {
        const once = mailboxText(formatPath(lp, d));
        expect(mailboxText(once)).toBe(once);
      }),
    );
  });
});

describe("foldLocalPart: NFC, then lower case (README 'Mailbox names')", () => {
  test("José in NFC and NFD is one mailbox; the Kelvin sign is k", () => {
    const nfc = "Jos\u00e9";
    const nfd = "Jose\u0301";
    expect(foldLocalPart(nfc)).toBe("jos\u00e9");
    expect(foldLocalPart(nfd)).toBe("jos\u00e9");
    expect(foldLocalPart("\u212Aelvin")).toBe("kelvin");
    expect(foldLocalPart("İ")).toBe("i\u0307");
    expect(foldLocalPart("MiXeD.Case")).toBe("mixed.case");
  });
  test("idempotent (fast-check)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 30 }), (s) => {
        const f = foldLocalPart(s);
        expect(foldLocalPart(f)).toBe(f);
      }),
    );
  });
});
