import { describe, expect, it } from "vitest";
import { randomText, seededRandom } from "../../test/helpers/random.ts";
import { splitFields, type HeaderField } from "./header-section.ts";

/** The line-by-line reading splitFields replaced: split on LF, one CR dropped per line, lines joined with CRLF. */
function splitByLines(text: string): HeaderField[] {
  const out: HeaderField[] = [];
  let current: string | null = null;
  const push = (): void => {
    if (current === null) return;
    const colon = current.indexOf(":");
    const name = colon > 0 ? current.slice(0, colon) : "";
    out.push({ name: /^[\x21-\x39\x3b-\x7e]+$/.test(name) ? name.toLowerCase() : "", raw: current });
    current = null;
  };
  for (let line of text.split("\n")) {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") {
      push();
      break;
    }
    if (line[0] === " " || line[0] === "\t") {
      if (current === null) out.push({ name: "", raw: line });
      else current += "\r\n" + line;
    } else {
      push();
      current = line;
    }
  }
  push();
  return out;
}

describe("splitFields", () => {
  it("splits folded fields and stops at the empty line", () => {
    const text = "From: a@x.test\r\nDKIM-Signature: v=1;\r\n\tb=abc\r\nSubject: hi\r\n\r\nbody: not a field\r\n";
    expect(splitFields(text)).toEqual([
      { name: "from", raw: "From: a@x.test" },
      { name: "dkim-signature", raw: "DKIM-Signature: v=1;\r\n\tb=abc" },
      { name: "subject", raw: "Subject: hi" },
    ]);
  });

  it("joins the lines of a field with CRLF where the message used a bare LF", () => {
    expect(splitFields("Subject: a\n b\r\n c\n\n")).toEqual([{ name: "subject", raw: "Subject: a\r\n b\r\n c" }]);
  });

  it("names malformed lines with an empty name", () => {
    expect(splitFields(" top\r\nno colon\r\nBad Name: x\r\n:x\r\n").map((f) => f.name)).toEqual(["", "", "", ""]);
  });

  it("reads every section as the line-by-line reading does (random sections)", () => {
    const alphabet = ["A", "b", ":", " ", "\t", "\r", "\n", "\r\n", "\r\n", "\r\n ", "x", "\xe9", ";", "-"];
    const rand = seededRandom(7);
    for (let t = 0; t < 20000; t++) {
      const text = randomText(rand, alphabet, 40);
      expect(splitFields(text), JSON.stringify(text)).toEqual(splitByLines(text));
    }
  });
});
