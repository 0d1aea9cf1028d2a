import { describe, expect, test } from "vitest";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Envelope } from "../delivery/types.ts";
import { newQueueId, openStored, Spool, SpoolSink, TRAILER_LEN } from "./index.ts";
import { localEnvelope } from "../../test/helpers/envelope.ts";

const temp = () => mkdtempSync(join(tmpdir(), "ringmta-spool-"));

const envelope = (rcpts: string[]): Envelope => localEnvelope(rcpts);

const bytes = (s: string) => new TextEncoder().encode(s);
const collect = (it: Iterable<Uint8Array>) => Buffer.concat([...it].map((c) => Buffer.from(c)));

describe("newQueueId", () => {
  test("20 chars of [0-9A-Z], unique and sorted in creation order", () => {
    const ids = Array.from({ length: 10_000 }, () => newQueueId());
    for (const id of ids) expect(id).toMatch(/^[0-9A-Z]{20}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});

describe("Spool", () => {
  test("commit leaves exactly <id>.msg (0600), readable back, arrival set, onCommitted called", async () => {
    const dir = temp();
    const committed: Array<[string, number]> = [];
    const spool = new Spool({ dir, onCommitted: (id, _e, size) => committed.push([id, size]) });
    const sink = spool.begin();
    sink.write(bytes("Received: from x\r\n"));
    sink.write(bytes("Subject: hi\r\n\r\nbody\r\n"));
    const env = envelope(["bob@example.test"]);
    const before = Date.now();
    await sink.commit(env);
    expect(env.arrival).toBeGreaterThanOrEqual(before);
    expect(readdirSync(dir)).toEqual([`${sink.id}.msg`]);
    expect(statSync(join(dir, `${sink.id}.msg`)).mode & 0o777).toBe(0o600);
    expect(committed).toEqual([[sink.id, sink.size]]);
    const item = openStored(dir, sink.id)!;
    expect(item.envelope).toEqual(env);
    expect(item.state.map((s) => s.status)).toEqual(["queued"]);
    expect(collect(item.message.chunks()).toString()).toBe("Received: from x\r\nSubject: hi\r\n\r\nbody\r\n");
  });

  test("a large message streams through <id>.tmp and reads back in 64 KiB chunks, byte-exact", async () => {
    const dir = temp();
    const spool = new Spool({ dir, onCommitted: () => {} });
    const sink = spool.begin();
    const piece = Buffer.alloc(10_000);
    for (let i = 0; i < piece.length; i++) piece[i] = i % 251;
    for (let i = 0; i < 50; i++) sink.write(piece);
    expect(readdirSync(dir)).toEqual([`${sink.id}.tmp`]);
    await sink.commit(envelope(["bob@example.test"]));
    expect(readdirSync(dir)).toEqual([`${sink.id}.msg`]);
    const item = openStored(dir, sink.id)!;
    expect(item.size).toBe(500_000);
    const chunks = [...item.message.chunks()];
    expect(chunks.length).toBe(Math.ceil(500_000 / 65536));
    expect(collect(chunks).equals(Buffer.concat(Array(50).fill(piece)))).toBe(true);
  });

  test("a 1 KiB message is one chunk", async () => {
    const dir = temp();
    const sink = new Spool({ dir, onCommitted: () => {} }).begin();
    sink.write(Buffer.alloc(1024, 65));
    await sink.commit(envelope(["bob@example.test"]));
    expect([...openStored(dir, sink.id)!.message.chunks()].length).toBe(1);
  });

  test("abort leaves nothing, small or large, and is idempotent", () => {
    const dir = temp();
    const spool = new Spool({ dir, onCommitted: () => {} });
    const small = spool.begin();
    small.write(bytes("hello"));
    small.abort();
    const large = spool.begin();
    large.write(Buffer.alloc(200_000));
    expect(readdirSync(dir).length).toBe(1);
    large.abort();
    large.abort();
    expect(readdirSync(dir)).toEqual([]);
    expect(() => large.write(bytes("x"))).toThrow();
  });

  test("a failing commit rejects and leaves nothing behind", async () => {
    const dir = temp();
    let called = false;
    const sink = new Spool({ dir, onCommitted: () => (called = true) }).begin();
    sink.write(Buffer.alloc(100_000));
    mkdirSync(join(dir, `${sink.id}.msg`)); // a directory in the way: the rename must fail
    await expect(sink.commit(envelope(["bob@example.test"]))).rejects.toThrow();
    expect(called).toBe(false);
    expect(readdirSync(dir)).toEqual([`${sink.id}.msg`]);
    expect(statSync(join(dir, `${sink.id}.msg`)).isDirectory()).toBe(true);
  });

  test("a 100 MB message keeps the sink's buffer at 64 KiB at most", async () => {
    const dir = temp();
    const sink = new Spool({ dir, onCommitted: () => {} }).begin() as SpoolSink;
    const chunk = Buffer.alloc(16_384 + 7, 0x61); // odd size: pieces straddle the buffer boundary
    let max = 0;
    while (sink.size < 100 * 1024 * 1024) {
      sink.write(chunk);
      max = Math.max(max, sink.buffered);
    }
    expect(max).toBeLessThanOrEqual(64 * 1024);
    await sink.commit(envelope(["bob@example.test"]));
    const st = statSync(join(dir, `${sink.id}.msg`));
    expect(st.size).toBeGreaterThan(sink.size + TRAILER_LEN);
    expect(openStored(dir, sink.id)!.size).toBe(sink.size);
    rmSync(dir, { recursive: true });
  });

  test("concurrent commits share fsync rounds", async () => {
    const dir = temp();
    const spool = new Spool({ dir, onCommitted: () => {} });
    const sinks = Array.from({ length: 100 }, () => spool.begin());
    for (const s of sinks) s.write(bytes("Subject: x\r\n\r\nx\r\n"));
    await Promise.all(sinks.map((s) => s.commit(envelope(["bob@example.test"]))));
    expect(readdirSync(dir).filter((n) => n.endsWith(".msg")).length).toBe(100);
    // 100 fd fsyncs + 100 directory fsyncs, in far fewer rounds than 200
    expect(spool.rounds).toBeLessThanOrEqual(10);
    expect(readFileSync(join(dir, `${sinks[0].id}.msg`)).subarray(0, 10).toString()).toBe("Subject: x");
  });
});
