/**
 * authenticationResults() read back by an outside parser (Debian python3-authres), and hasAuthservId() on the
 * forms RFC 8601 §2.2 allows.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, test } from "vitest";
import { authenticationResults, hasAuthservId, type DkimOutcome } from "../../src/checks/index.ts";
import { peerTest } from "../helpers/peers.ts";

/** Each field parsed by authres: [authserv_id, [[method, result, {ptype.property: value}]...]]. */
function authresParse(fields: string[]): Array<[string, Array<[string, string, Record<string, string>]>]> {
  const py = `
import sys, json, authres
out = []
for f in json.load(sys.stdin):
    h = authres.AuthenticationResultsHeader.parse(f)
    out.append([h.authserv_id, [[r.method, r.result, {p.type + '.' + p.name: p.value for p in r.properties}] for r in h.results]])
print(json.dumps(out))
`;
  const r = spawnSync("/usr/bin/python3", ["-c", py], { input: JSON.stringify(fields), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`authres: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const sig = (result: DkimOutcome["result"], selector: string, b: string, reason?: string): DkimOutcome => ({
  result,
  domain: "example.test",
  selector,
  algorithm: "rsa-sha256",
  b,
  ...(reason ? { reason } : {}),
});

describe("authenticationResults", () => {
  const full = authenticationResults("mx.example.net", {
    spf: { result: "pass", scope: "mailfrom", domain: "example.test", property: "smtp.mailfrom=alice@example.test" },
    dkim: [sig("pass", "rsa1", "ab/cd+EF"), sig("fail", "ed1", "Zz09Yy12", "body hash did not verify (really)")],
    arc: { result: "pass", instance: 2 },
    dmarc: { result: "pass", fromDomain: "example.test", policy: "reject", reason: "aligned DKIM example.test" },
  });

  test("one field, folded under 78 columns, ending CRLF", () => {
    expect(full.startsWith("Authentication-Results: mx.example.net;\r\n spf=pass")).toBe(true);
    expect(full.endsWith("\r\n")).toBe(true);
    for (const line of full.slice(0, -2).split("\r\n")) expect(line.length).toBeLessThanOrEqual(78);
    expect(full.slice(0, -2)).not.toMatch(/\r\n(?![ \t])/); // every line break is a fold
  });

  peerTest("authres", "python3-authres parses every form with the results put in", () => {
    const unsigned = authenticationResults("mx.example.net", {
      spf: { result: "none", scope: "helo", domain: "", property: "smtp.helo=[192.0.2.1]", reason: "no SPF record" },
      dkim: [],
      arc: null,
      dmarc: { result: "temperror", fromDomain: "example.test", policy: "none", reason: "_dmarc.example.test: DNS timeout" },
    });
    const nothing = authenticationResults("mx.example.net", { spf: null, dkim: null, arc: null, dmarc: null });
    const odd = authenticationResults("mx.example.net", {
      spf: { result: "softfail", scope: "mailfrom", domain: "example.test", property: 'smtp.mailfrom="a b;c"@example.test' },
      dkim: null,
      arc: { result: "fail", instance: 1, reason: "i=1 no valid signature" },
      dmarc: null,
    });
    const [a, b, c, d] = authresParse([full, unsigned, nothing, odd]);
    expect(a![0]).toBe("mx.example.net");
    expect(a![1]).toEqual([
      ["spf", "pass", { "smtp.mailfrom": "alice@example.test" }],
      ["dkim", "pass", { "header.d": "example.test", "header.s": "rsa1", "header.b": "ab/cd+EF" }],
      ["dkim", "fail", { "header.d": "example.test", "header.s": "ed1", "header.b": "Zz09Yy12" }],
      ["arc", "pass", {}],
      ["dmarc", "pass", { "header.from": "example.test" }],
    ]);
    expect(b![1]).toEqual([
      ["spf", "none", { "smtp.helo": "[192.0.2.1]" }],
      ["dkim", "none", {}],
      ["dmarc", "temperror", { "header.from": "example.test" }],
    ]);
    expect(c).toEqual(["mx.example.net", []]);
    expect(d![1][0]).toEqual(["spf", "softfail", { "smtp.mailfrom": '"a b;c"@example.test' }]);
    expect(d![1][1]).toEqual(["arc", "fail", {}]);
  });
});

describe("hasAuthservId (RFC 8601 §5)", () => {
  test("matches case-insensitively, with CFWS and a version; not a longer or different id", () => {
    const cases: Array<[string, boolean]> = [
      ["mx.example.net; spf=pass smtp.mailfrom=a@b", true],
      ["  MX.Example.NET ; none", true],
      ["(forged (nested)) mx.example.net 1 (v) ; dkim=pass", true],
      ['"mx.example.net"; none', true],
      ["mx.example.net", true],
      ["mx.example.net.evil.test; none", false],
      ["other.example.net; spf=pass", false],
      ["mx.example.net x; none", false],
      ["(unterminated mx.example.net; none", false],
      ["", false],
    ];
    for (const [value, carries] of cases) expect(hasAuthservId(value, "mx.example.net"), value).toBe(carries);
  });
});
