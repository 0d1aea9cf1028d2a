import { describe, expect, test } from "vitest";
import { DATA_BARE_NEWLINE, DATA_MORE, DotReader } from "./dot-reader.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feed `chunks` in order; the joined output, the return of the last read and the slices emitted. */
function run(chunks: string[]): { body: string; ret: number; slices: number } {
  const r = new DotReader();
  let body = "";
  let ret = DATA_MORE;
  let slices = 0;
  for (const c of chunks) {
    ret = r.read(enc.encode(c), 0, c.length, (b) => {
      body += dec.decode(b);
      slices++;
    });
    if (ret !== DATA_MORE) break;
  }
  return { body, ret, slices };
}

describe("DotReader", () => {
  test("the CRLF before the final dot belongs to the message", () => {
    expect(run(["a\r\n.\r\n"])).toEqual({ body: "a\r\n", ret: 6, slices: 1 });
  });
  test("'.' CRLF right after DATA is an empty message", () => {
    expect(run([".\r\n"])).toEqual({ body: "", ret: 3, slices: 0 });
  });
  test("a leading dot is removed: '..x' yields '.x', '.x' yields 'x'", () => {
    expect(run(["..x\r\n.\r\n"]).body).toBe(".x\r\n");
    expect(run(["a\r\n.b\r\n..\r\n.\r\n"]).body).toBe("a\r\nb\r\n.\r\n");
  });
  test("dots not at a line start stay", () => {
    expect(run(["a.b.\r\n.\r\n"]).body).toBe("a.b.\r\n");
  });
  test("returns the index after the terminator: the rest is pipelined commands", () => {
    const s = "hi\r\n.\r\nQUIT\r\n";
    expect(run([s]).ret).toBe(7);
  });
  test("read honours start and end", () => {
    const buf = enc.encode("XXa\r\n.\r\nYY");
    const out: string[] = [];
    expect(new DotReader().read(buf, 2, 8, (b) => out.push(dec.decode(b)))).toBe(8);
    expect(out.join("")).toBe("a\r\n");
    const r = new DotReader();
    expect(r.read(buf, 2, 6, (b) => out.push(dec.decode(b)))).toBe(DATA_MORE);
  });
  test("the terminator split across chunks in every position", () => {
    const s = "line one\r\n..two\r\n.\r\n";
    for (let k = 0; k <= s.length; k++) {
      const { body, ret } = run([s.slice(0, k), s.slice(k)]);
      expect(body, `split at ${k}`).toBe("line one\r\n.two\r\n");
      expect(ret).not.toBe(DATA_BARE_NEWLINE);
    }
  });
  test("byte-at-a-time feeding gives the same body", () => {
    const s = "Subject: x\r\n\r\n.hidden\r\n..\r\nend\r\n.\r\n";
    expect(run([...s]).body).toBe("Subject: x\r\n\r\nhidden\r\n.\r\nend\r\n");
  });
  test("one slice per chunk when no dot is removed", () => {
    const { slices } = run(["aaaa\r\nbbbb\r\n", "cccc\r\n", ".\r\n"]);
    expect(slices).toBe(2);
  });
  test("emitted slices are views of the input (zero copy)", () => {
    const buf = enc.encode("hello\r\n.\r\n");
    const seen: Uint8Array[] = [];
    new DotReader().read(buf, 0, buf.length, (b) => seen.push(b));
    expect(seen[0].buffer).toBe(buf.buffer);
  });
  test("8-bit bytes pass through untouched", () => {
    const r = new DotReader();
    const buf = Uint8Array.of(0x80, 0xff, 0x00, 0x7f, 13, 10, 46, 13, 10);
    const out: number[] = [];
    expect(r.read(buf, 0, buf.length, (b) => out.push(...b))).toBe(9);
    expect(out).toEqual([0x80, 0xff, 0x00, 0x7f, 13, 10]);
  });

  describe("SMTP smuggling vectors: bare CR / bare LF are errors, never an end of data", () => {
    const vectors = [
      "a\n.\r\n",
      "a\r\n.\n",
      "a\n.\n",
      "a\r.\r\n",
      "a\r\n.\rX",
      "a\r\n.\r.\r\n",
      "a\rb\r\n.\r\n",
      "a\nb\r\n.\r\n",
      "\n.\r\n",
      ".\n",
      "\r\n.\n\r\n.\r\n",
      "a\r\n\n.\r\n",
      "a\r\r\n.\r\n",
    ];
    for (const v of vectors) {
      test(JSON.stringify(v), () => {
        expect(run([v]).ret).toBe(DATA_BARE_NEWLINE);
        // Same verdict however it is chunked.
        expect(run([...v]).ret).toBe(DATA_BARE_NEWLINE);
      });
    }
    test("the data after an error is never read as an end", () => {
      const r = new DotReader();
      const a = enc.encode("x\n");
      expect(r.read(a, 0, a.length, () => {})).toBe(DATA_BARE_NEWLINE);
      const b = enc.encode("\r\n.\r\n");
      expect(r.read(b, 0, b.length, () => {})).toBe(DATA_BARE_NEWLINE);
      r.reset();
      expect(r.read(b, 0, b.length, () => {})).toBe(5);
    });
    test("a CR at the end of a chunk followed by LF is fine, followed by other is not", () => {
      // The index is into the chunk that held the end: "\n.\r\n" is consumed whole.
      expect(run(["a\r", "\n.\r\n"]).ret).toBe(4);
      expect(run(["a\r", "b\r\n.\r\n"]).ret).toBe(DATA_BARE_NEWLINE);
    });
  });

  test("reset starts a new message as if after CRLF", () => {
    const r = new DotReader();
    const a = enc.encode("abc");
    expect(r.read(a, 0, 3, () => {})).toBe(DATA_MORE);
    r.reset();
    const b = enc.encode(".\r\n");
    expect(r.read(b, 0, 3, () => {})).toBe(3);
  });
});
