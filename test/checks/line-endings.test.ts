/**
 * bareLfToCrlf (checks/message.ts) replaces mailauth's per-byte ensureLinebreaks in the verifier that reads
 * messages with ARC fields: on random bytes rich in CR and LF, cut into random chunks, both give the same pieces.
 */
import { Buffer } from "node:buffer";
import { expect, test } from "vitest";
// @ts-expect-error mailauth's parser has no type declarations; only its ensureLinebreaks generator is used here.
import { MessageParser } from "mailauth/lib/dkim/message-parser.js";
import { bareLfToCrlf } from "../../src/checks/message.ts";

type Pieces = (input: Buffer) => Buffer[];

/** mailauth's generator, run with its own `lastByte` state as the parser keeps it across chunks. */
function mailauthPieces(): Pieces {
  const state: { lastByte?: number } = {};
  const gen = (MessageParser as { prototype: { ensureLinebreaks(this: object, b: Buffer): Iterable<Buffer> } }).prototype.ensureLinebreaks;
  return (input) => [...gen.call(state, input)];
}

function ourPieces(): Pieces {
  let before: number | undefined;
  return (input) => {
    const out = [...bareLfToCrlf(input, before)];
    if (input.length > 0) before = input[input.length - 1];
    return out;
  };
}

/** A deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("bare LFs become CRLF in the same pieces as mailauth's parser makes, across any chunking", () => {
  const alphabet = [0x0d, 0x0a, 0x78, 0x20, 0x0d, 0x0a];
  for (let seed = 1; seed <= 500; seed++) {
    const r = rng(seed);
    const message = Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => alphabet[Math.floor(r() * alphabet.length)]!));
    const theirs = mailauthPieces();
    const ours = ourPieces();
    for (let at = 0; at < message.length || at === 0; ) {
      const len = Math.floor(r() * 12);
      const chunk = message.subarray(at, at + len);
      expect(ours(chunk).map((b) => b.toString("hex")), `seed ${seed}, offset ${at}`).toEqual(theirs(chunk).map((b) => b.toString("hex")));
      at += Math.max(len, 1);
    }
  }
});

test("a chunk without LF comes back whole; a CRLF split across two chunks stays one line ending", () => {
  const ours = ourPieces();
  const whole = Buffer.from("no line ending");
  expect(ours(whole)).toEqual([whole]);
  expect(Buffer.concat(ours(Buffer.from("a\r"))).toString()).toBe("a\r");
  expect(Buffer.concat(ours(Buffer.from("\nb\n"))).toString()).toBe("\nb\r\n");
});
