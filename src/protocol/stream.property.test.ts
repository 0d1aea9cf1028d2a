/**
 * Property tests over whole SMTP input streams: the framing (findCrlf), parsing (parseCommand) and DATA reading
 * (DotReader) give the same result however the stream is cut into chunks, and dot-stuffing followed by DotReader
 * is the identity on CRLF-normalised bodies.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { parseCommand, type ParsedCommand } from "./command.ts";
import { DATA_BARE_NEWLINE, DATA_MORE, DotReader } from "./dot-reader.ts";
import { DotStuffer } from "./dot-stuff.ts";
import { findCrlf } from "./line.ts";

const enc = new TextEncoder();

type Event = { kind: "cmd"; parsed: ParsedCommand } | { kind: "body"; bytes: number[] } | { kind: "error" };

/**
 * A minimal receive loop in the shape the session uses: commands are framed by findCrlf; after DATA, bytes go to
 * the DotReader until it returns the end; the unread rest goes back to command parsing. Chunks are appended to a
 * pending buffer (the session does its own buffering; this is the reference shape, not the optimised one).
 */
function drive(chunks: Uint8Array[]): Event[] {
  const events: Event[] = [];
  const reader = new DotReader();
  let pending = new Uint8Array(0);
  let inData = false;
  let body: number[] = [];
  for (const chunk of chunks) {
    const joined = new Uint8Array(pending.length + chunk.length);
    joined.set(pending);
    joined.set(chunk, pending.length);
    let pos = 0;
    const end = joined.length;
    for (;;) {
      if (inData) {
        const r = reader.read(joined, pos, end, (b) => {
          for (const x of b) body.push(x);
        });
        if (r === DATA_MORE) {
          pos = end;
          break;
        }
        if (r === DATA_BARE_NEWLINE) {
          events.push({ kind: "error" });
          return events;
        }
        events.push({ kind: "body", bytes: body });
        body = [];
        inData = false;
        pos = r;
        continue;
      }
      const lf = findCrlf(joined, pos, end);
      if (lf === -1) break;
      const parsed = parseCommand(joined.subarray(pos, lf - 1));
      events.push({ kind: "cmd", parsed });
      pos = lf + 1;
      if (parsed.ok && parsed.command.verb === "DATA") {
        inData = true;
        reader.reset();
      }
    }
    pending = joined.slice(pos);
  }
  return events;
}

/** Cut `bytes` at the given (sorted, deduplicated) positions. */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const ps = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of ps) {
    out.push(bytes.slice(prev, p));
    prev = p;
  }
  out.push(bytes.slice(prev));
  return out;
}

const commandLine = fc.oneof(
  fc.constantFrom(
    "EHLO client.example",
    "HELO x",
    "MAIL FROM:<a@b.example> SIZE=100",
    "MAIL FROM:<>",
    "mail from: <\"q x\"@[192.0.2.1]> BODY=8BITMIME",
    "RCPT TO:<postmaster>",
    "RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d",
    "RSET",
    "NOOP",
    "VRFY x",
    "HELP",
    "QUIT",
    "BDAT 10 LAST",
    "AUTH PLAIN =",
    "XYZZY",
    "DATA x",
    "MAIL FROM:<bad",
    "",
  ),
  // Arbitrary printable lines: unknown verbs, junk arguments, non-ASCII.
  fc.string({ unit: "grapheme", maxLength: 60 }).filter((s) => !/[\r\n]/.test(s)),
);

/** A body line: any bytes but CR and LF, often beginning with dots; up to 998 octets (RFC 5321 §4.5.3.1.6). */
const bodyLine = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ minLength: 998, maxLength: 998 }),
  fc.constantFrom(".", "..", ".x", "...y", "", "Received: x").map((s) => enc.encode(s)),
).map((a) => a.map((b) => (b === 13 || b === 10 ? 46 : b)));

const body = fc.array(bodyLine, { maxLength: 12 });

type Item = { kind: "cmd"; line: string } | { kind: "data"; lines: Uint8Array[] };
const script = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: commandLine.map((line): Item => ({ kind: "cmd", line })) },
    { weight: 1, arbitrary: body.map((lines): Item => ({ kind: "data", lines })) },
  ),
  { maxLength: 12 },
);

/** Encode a script; each DATA item is "DATA" CRLF, dot-stuffed lines with CRLF, "." CRLF. Also the expectation. */
function encode(items: Item[]): { bytes: Uint8Array; expected: Event[] } {
  const parts: number[] = [];
  const expected: Event[] = [];
  const push = (a: ArrayLike<number>) => {
    for (let i = 0; i < a.length; i++) parts.push(a[i]);
  };
  for (const it of items) {
    if (it.kind === "cmd") {
      // A generated line must not itself be DATA (that would switch modes); tests of DATA go through "data".
      const line = enc.encode(it.line);
      const parsed = parseCommand(line);
      if (parsed.ok && parsed.command.verb === "DATA") continue;
      push(line);
      push([13, 10]);
      expected.push({ kind: "cmd", parsed });
    } else {
      push(enc.encode("DATA\r\n"));
      expected.push({ kind: "cmd", parsed: parseCommand(enc.encode("DATA")) });
      const content: number[] = [];
      for (const l of it.lines) {
        if (l[0] === 46) parts.push(46);
        push(l);
        push([13, 10]);
        for (const x of l) content.push(x);
        content.push(13, 10);
      }
      push(enc.encode(".\r\n"));
      expected.push({ kind: "body", bytes: content });
    }
  }
  return { bytes: Uint8Array.from(parts), expected };
}

describe("stream properties", () => {
  test("random chunkings yield the same commands and bodies as the whole stream, and as encoded", () => {
    fc.assert(
      fc.property(script, fc.array(fc.nat(), { maxLength: 30 }), (items, points) => {
        const { bytes, expected } = encode(items);
        const whole = drive([bytes]);
        expect(whole).toEqual(expected);
        expect(drive(cut(bytes, points))).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  test("byte-at-a-time feeding yields the same as the whole stream", () => {
    fc.assert(
      fc.property(script, (items) => {
        const { bytes } = encode(items);
        const ones = Array.from(bytes, (b) => Uint8Array.of(b));
        expect(drive(ones)).toEqual(drive([bytes]));
      }),
      { numRuns: 60 },
    );
  });

  test("pipelined commands after the end of data are read from the same chunk", () => {
    const { bytes, expected } = encode([
      { kind: "cmd", line: "MAIL FROM:<a@b.example>" },
      { kind: "data", lines: [enc.encode(".x"), enc.encode("y")] },
      { kind: "cmd", line: "QUIT" },
    ]);
    expect(drive([bytes])).toEqual(expected);
  });

  test("a bare LF or bare CR anywhere in a body stops the stream with an error, whatever the chunking", () => {
    fc.assert(
      fc.property(body, fc.nat(), fc.constantFrom(10, 13), fc.array(fc.nat(), { maxLength: 10 }), (lines, at, bad, points) => {
        const { bytes } = encode([{ kind: "data", lines }]);
        // Insert "A", the bare byte, "A" anywhere in the content (after "DATA\r\n", up to before ".\r\n"): the
        // prefix is unchanged valid content, so no end of data can come first, and the byte is bare.
        const pos = 6 + (at % (bytes.length - 6 - 3 + 1));
        const withBad = new Uint8Array(bytes.length + 3);
        withBad.set(bytes.subarray(0, pos));
        withBad.set([0x41, bad, 0x41], pos);
        withBad.set(bytes.subarray(pos), pos + 3);
        const ev = drive(cut(withBad, points));
        expect(ev[ev.length - 1]).toEqual({ kind: "error" });
      }),
      { numRuns: 300 },
    );
  });

  test("dot-stuffing then DotReader is the identity on CRLF-normalised bodies", () => {
    fc.assert(
      fc.property(body, fc.boolean(), fc.array(fc.nat(), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 20 }), (lines, finalCrlf, p1, p2) => {
        const parts: number[] = [];
        lines.forEach((l, k) => {
          for (const x of l) parts.push(x);
          if (k < lines.length - 1 || finalCrlf) parts.push(13, 10);
        });
        const original = Uint8Array.from(parts);
        const stuffer = new DotStuffer();
        const wire: number[] = [];
        for (const c of cut(original, p1)) stuffer.push(c, (b) => wire.push(...b));
        wire.push(...stuffer.end());
        const reader = new DotReader();
        const got: number[] = [];
        const wireBytes = Uint8Array.from(wire);
        let ret = DATA_MORE;
        let consumed = 0;
        for (const c of cut(wireBytes, p2)) {
          ret = reader.read(c, 0, c.length, (b) => got.push(...b));
          if (ret !== DATA_MORE) {
            consumed += ret;
            break;
          }
          consumed += c.length;
        }
        expect(consumed).toBe(wireBytes.length);
        // A body not ending in CRLF is sent with one added (RFC 5321 §4.1.1.4): that is what arrives.
        const endsCrlf = original.length === 0 || (original[original.length - 2] === 13 && original[original.length - 1] === 10);
        const want = endsCrlf ? Array.from(original) : [...original, 13, 10];
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });
});
