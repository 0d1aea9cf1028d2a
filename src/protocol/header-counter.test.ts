import { describe, expect, test } from "vitest";
import { ReceivedCounter } from "./header-counter.ts";

const enc = new TextEncoder();
function count(chunks: string[]): number {
  const c = new ReceivedCounter();
  for (const s of chunks) c.feed(enc.encode(s));
  return c.count;
}

const msg =
  "Received: from a by b\r\n\tcontinued Received: no\r\nreceived: x\r\nRECEIVED:y\r\nX-Received: z\r\n" +
  "Receivedd: q\r\nReceived : w\r\nSubject: Received: hi\r\n\r\nReceived: in the body\r\n";

describe("ReceivedCounter", () => {
  test("counts header lines starting with Received: case-insensitively, only in the header section", () => {
    expect(count([msg])).toBe(4);
  });
  test("the same count for any chunking", () => {
    expect(count([...msg])).toBe(4);
    for (let k = 0; k <= msg.length; k++) expect(count([msg.slice(0, k), msg.slice(k)]), `split ${k}`).toBe(4);
  });
  test("obsolete syntax (RFC 5322 §4.5.3): spaces and tabs before the colon, any letter case", () => {
    const spellings = ["Received :", "received\t:", "RECEIVED \t  :", "rEcEiVeD:", "ReCeIvEd\t\t:"];
    for (const sp of spellings.map((x) => x.replace(/\\t/g, "\t"))) {
      const m = `${sp} from x\r\n`.repeat(7) + "Subject: s\r\n\r\nReceived: body\r\n";
      expect(count([m]), JSON.stringify(sp)).toBe(7);
      expect(count([...m]), JSON.stringify(sp)).toBe(7);
    }
  });
  test("not a Received field: other names, a fold or other bytes before the colon", () => {
    for (const h of ["Received x:", "Received\r\n :", "Receive d:", "Received-SPF: pass", "XReceived:", " Received:"]) {
      expect(count([`Subject: a\r\n${h} y\r\n\r\n`]), JSON.stringify(h)).toBe(0);
    }
  });
  test("issue 15: 40 x Received: + 11 x Received : are 51 hops", () => {
    expect(count(["Received: a\r\n".repeat(40) + "Received : b\r\n".repeat(11) + "\r\n"])).toBe(51);
  });
  test("no headers: an empty first line ends the header section at once", () => {
    expect(count(["\r\nReceived: x\r\n"])).toBe(0);
  });
  test("many hops", () => {
    expect(count(["Received: x\r\n".repeat(60) + "\r\nbody"])).toBe(60);
  });
  test("reset clears the count", () => {
    const c = new ReceivedCounter();
    c.feed(enc.encode("Received: a\r\n"));
    expect(c.count).toBe(1);
    c.reset();
    expect(c.count).toBe(0);
    c.feed(enc.encode("Received: a\r\nReceived: b\r\n"));
    expect(c.count).toBe(2);
  });
});
