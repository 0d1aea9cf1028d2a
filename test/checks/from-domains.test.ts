/**
 * The author domains DMARC evaluates (checks/from-domains.ts), against fixed cases and against nodemailer's
 * addressparser — the parser mailauth reads From with — as an outside oracle on many generated address lists.
 */
import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { addrSpecs, authorDomains } from "../../src/checks/from-domains.ts";

const addressparser = createRequire(import.meta.url)("nodemailer/lib/addressparser") as (
  v: string,
) => Array<{ address?: string; group?: Array<{ address?: string }> }>;

function oracle(value: string): string[] {
  const out: string[] = [];
  for (const a of addressparser(value.trim())) for (const m of a.group ?? [a]) if (m.address) out.push(m.address);
  return out;
}

describe("author domains (RFC 5322 §3.4, RFC 6854)", () => {
  test.each([
    ["alice@example.test", ["example.test"]],
    [" Alice <alice@Example.TEST.>", ["example.test"]],
    ['"Bank, Security (urgent) a@evil.test" <alerts@bank.test>', ["bank.test"]],
    ["(comment a@evil.test (nested)) bob@b.test", ["b.test"]],
    ["a@one.test, B <b@two.test>", ["one.test", "two.test"]],
    ["Friends: a@one.test, b@two.test;, c@three.test", ["one.test", "two.test", "three.test"]],
    ["undisclosed-recipients:;", []],
    ['"quoted@local"@q.test', ["q.test"]],
    ["<@route.test,@via.test:user@real.test>", ["real.test"]],
    ["user@[192.0.2.1]", ["[192.0.2.1]"]],
    ["no address here", []],
    ["", []],
  ])("%j → %j", (value, want) => {
    expect(authorDomains([value])).toEqual(want);
  });

  test("the same addresses as nodemailer's addressparser on generated lists", () => {
    const word = fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/);
    const domain = fc.tuple(word, word).map(([a, b]) => `${a}.${b}`);
    const addr = fc.tuple(word, domain).map(([l, d]) => `${l}@${d}`);
    const mailbox = fc.oneof(
      addr,
      fc.tuple(word, addr).map(([n, a]) => `${n} <${a}>`),
      fc.tuple(word, addr).map(([n, a]) => `"${n}, ${n}" <${a}>`),
      fc.tuple(word, addr).map(([c, a]) => `(${c}) ${a}`),
    );
    const list = fc.array(mailbox, { minLength: 1, maxLength: 4 }).map((m) => m.join(", "));
    fc.assert(
      fc.property(list, (value) => {
        expect(addrSpecs(value)).toEqual(oracle(value));
      }),
      { numRuns: 500 },
    );
  });

  test("bounded: a 1 MB From value is one pass", () => {
    const big = "(".repeat(100_000) + "x".repeat(900_000) + " a@b.test";
    const t = Date.now();
    expect(authorDomains([big])).toEqual([]); // all of it is an unclosed comment
    expect(Date.now() - t).toBeLessThan(2000);
  });
});
