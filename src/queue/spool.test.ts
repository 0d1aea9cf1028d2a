import { describe, expect, test } from "vitest";
import { existsSync, mkdirSync, readdirSync, statSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Envelope } from "../mail/index.ts";
import {
  MEMORY_BUDGET,
  MEMORY_MESSAGE_MAX,
  newQueueId,
  openStored,
  parseToken,
  recoverSegments,
  SegmentReader,
  SINK_BUFFER,
  Spool,
  SpoolSink,
  storedFromItem,
  TRAILER_LEN,
} from "./index.ts";
import type { CommittedItem } from "./index.ts";
import { readSegment } from "./segment.ts";
import { localEnvelope } from "../../test/helpers/envelope.ts";
import { commitMessages } from "../../test/helpers/spool.ts";
import { tempDir } from "../../test/helpers/server.ts";

const temp = () => tempDir("ringmta-spool-");

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
  test("a small commit is one record in a segment (0600), readable back by its ref, arrival set, onCommitted called", async () => {
    const dir = temp();
    const committed: CommittedItem[] = [];
    const spool = new Spool({ dir, onCommitted: (c) => committed.push(c) });
    const sink = spool.begin();
    sink.write(bytes("Received: from x\r\n"));
    sink.write(bytes("Subject: hi\r\n\r\nbody\r\n"));
    const env = envelope(["bob@example.test"]);
    const before = Date.now();
    await sink.commit(env);
    await spool.close();
    expect(env.arrival).toBeGreaterThanOrEqual(before);
    expect(readdirSync(dir)).toEqual(["segments"]);
    const segs = readdirSync(join(dir, "segments")).sort();
    expect(segs.length).toBe(2); // <seg>.done and <seg>.seg
    for (const f of segs) expect(statSync(join(dir, "segments", f)).mode & 0o777).toBe(0o600);
    expect(committed.length).toBe(1);
    const c = committed[0]!;
    expect(c).toMatchObject({ id: sink.id, size: sink.size });
    const { id, seg, offset } = parseToken(c.ref);
    expect(id).toBe(sink.id);
    expect(`${seg}.seg`).toBe(segs[1]);
    const reader = new SegmentReader(dir);
    const item = storedFromItem(reader.read(seg!, offset, id)!, id);
    expect(item.envelope).toEqual(env);
    expect(item.state.map((s) => s.status)).toEqual(["queued"]);
    expect(collect(item.message.chunks()).toString()).toBe("Received: from x\r\nSubject: hi\r\n\r\nbody\r\n");
    // Done: the record is no longer served (delivered or deleted).
    reader.markDone(seg!, id);
    expect(reader.read(seg!, offset, id)).toBeNull();
    reader.close();
  });

  test("a large message streams through <id>.tmp and reads back in 64 KiB chunks, byte-exact", async () => {
    const dir = temp();
    const spool = new Spool({ dir, onCommitted: () => {} });
    const sink = spool.begin();
    const piece = Buffer.alloc(10_000);
    for (let i = 0; i < piece.length; i++) piece[i] = i % 251;
    for (let i = 0; i < 150; i++) sink.write(piece); // 1.5 MB: over MEMORY_MESSAGE_MAX
    expect(readdirSync(dir).filter((f) => f !== "segments")).toEqual([`${sink.id}.tmp`]);
    await sink.commit(envelope(["bob@example.test"]));
    expect(readdirSync(dir).sort()).toEqual([`${sink.id}.msg`, "segments"]);
    const item = openStored(dir, sink.id)!;
    expect(item.size).toBe(1_500_000);
    const chunks = [...item.message.chunks()];
    expect(chunks.length).toBe(Math.ceil(1_500_000 / 65536));
    expect(collect(chunks).equals(Buffer.concat(Array(150).fill(piece)))).toBe(true);
  });

  test("a 1 KiB message is one chunk, from its segment and from its file once written out", async () => {
    const dir = temp();
    const [c] = await commitMessages(dir, [{ body: Buffer.alloc(1024, 65), envelope: envelope(["bob@example.test"]) }]);
    const { id, seg, offset } = parseToken(c!.ref);
    const reader = new SegmentReader(dir);
    expect([...storedFromItem(reader.read(seg!, offset, id)!, id).message.chunks()].length).toBe(1);
    reader.close();
    expect(recoverSegments(dir)).toBe(1);
    expect([...openStored(dir, id)!.message.chunks()].length).toBe(1);
  });

  test("abort leaves nothing, small or large, and is idempotent", () => {
    const dir = temp();
    const spool = new Spool({ dir, onCommitted: () => {} });
    const small = spool.begin();
    small.write(bytes("hello"));
    small.abort();
    const large = spool.begin();
    large.write(Buffer.alloc(MEMORY_MESSAGE_MAX + 1));
    expect(readdirSync(dir).filter((f) => f !== "segments").length).toBe(1);
    large.abort();
    large.abort();
    expect(readdirSync(dir).filter((f) => f !== "segments")).toEqual([]);
    expect(spool.memoryHeld).toBe(0);
    expect(() => large.write(bytes("x"))).toThrow();
  });

  test("a failing commit rejects and leaves nothing behind", async () => {
    const dir = temp();
    let called = false;
    const sink = new Spool({ dir, onCommitted: () => (called = true) }).begin();
    sink.write(Buffer.alloc(MEMORY_MESSAGE_MAX + 100_000)); // a file item: only those are renamed
    mkdirSync(join(dir, `${sink.id}.msg`)); // a directory in the way: the rename must fail
    await expect(sink.commit(envelope(["bob@example.test"]))).rejects.toThrow();
    expect(called).toBe(false);
    expect(readdirSync(dir).sort()).toEqual([`${sink.id}.msg`, "segments"]);
    expect(statSync(join(dir, `${sink.id}.msg`)).isDirectory()).toBe(true);
  });

  test("a 100 MB message holds at most 1 MiB (+ room for its meta) in memory, and 64 KiB once it streams to a file", async () => {
    const dir = temp();
    const sink = new Spool({ dir, onCommitted: () => {} }).begin() as SpoolSink;
    const chunk = Buffer.alloc(16_384 + 7, 0x61); // odd size: pieces straddle the buffer boundary
    let max = 0;
    let maxSpilled = 0;
    while (sink.size < 100 * 1024 * 1024) {
      sink.write(chunk);
      max = Math.max(max, sink.buffered);
      if (sink.spilled) maxSpilled = Math.max(maxSpilled, sink.buffered);
    }
    expect(max).toBeLessThanOrEqual(MEMORY_MESSAGE_MAX + 64 * 1024);
    expect(maxSpilled).toBe(SINK_BUFFER);
    await sink.commit(envelope(["bob@example.test"]));
    const st = statSync(join(dir, `${sink.id}.msg`));
    expect(st.size).toBeGreaterThan(sink.size + TRAILER_LEN);
    expect(openStored(dir, sink.id)!.size).toBe(sink.size);
    rmSync(dir, { recursive: true });
  });

  test("concurrent commits share rounds: 100 records in one segment, in far fewer rounds than 100", async () => {
    const dir = temp();
    const refs: string[] = [];
    const spool = new Spool({ dir, onCommitted: (c) => refs.push(c.ref) });
    const sinks = Array.from({ length: 100 }, () => spool.begin());
    for (const s of sinks) s.write(bytes("Subject: x\r\n\r\nx\r\n"));
    await Promise.all(sinks.map((s) => s.commit(envelope(["bob@example.test"]))));
    await spool.close();
    expect(spool.rounds).toBeLessThanOrEqual(10);
    expect(new Set(refs.map((r) => parseToken(r).seg)).size).toBe(1);
    const seg = parseToken(refs[0]!).seg!;
    const records = readSegment(join(dir, "segments", `${seg}.seg`));
    expect(records.map((r) => r.id).sort()).toEqual(sinks.map((s) => s.id).sort());
    expect(Buffer.from(records[0]!.item.subarray(0, 10)).toString()).toBe("Subject: x");
  });

  test("a segment is rotated at 8 MiB and deleted once every record in it is released", async () => {
    const dir = temp();
    const refs: string[] = [];
    const spool = new Spool({ dir, onCommitted: (c) => refs.push(c.ref) });
    const body = Buffer.alloc(60 * 1024, 0x61); // in memory (≤ 64 KiB): a segment record
    for (let i = 0; i < 150; i++) {
      const sink = spool.begin();
      sink.write(body);
      await sink.commit(envelope(["bob@example.test"]));
    }
    const segs = [...new Set(refs.map((r) => parseToken(r).seg!))];
    expect(segs.length).toBe(2); // 150 × 60 KiB > 8 MiB
    const first = refs.filter((r) => parseToken(r).seg === segs[0]);
    for (const r of first.slice(0, -1)) spool.release(r);
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(join(dir, "segments", `${segs[0]}.seg`))).toBe(true);
    spool.release(first.at(-1)!);
    await waitUntil(() => readdirSync(join(dir, "segments")).every((f) => !f.startsWith(segs[0]!)));
    // The current segment is never deleted, even when all of its records are released.
    for (const r of refs.filter((x) => parseToken(x).seg === segs[1])) spool.release(r);
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(join(dir, "segments", `${segs[1]}.seg`))).toBe(true);
    await spool.close();
  });
});

describe("Spool memory budget", () => {
  test("sinks beyond the 64 MiB budget stream to files; memory held stays within the budget plus 64 KiB per spilled sink", async () => {
    const dir = temp();
    const spool = new Spool({ dir, onCommitted: () => {} });
    const sinks: SpoolSink[] = [];
    const mib = Buffer.alloc(MEMORY_MESSAGE_MAX - 70 * 1024, 0x62);
    for (let i = 0; i < 80; i++) {
      const s = spool.begin() as SpoolSink;
      s.write(mib);
      sinks.push(s);
    }
    const spilled = sinks.filter((s) => s.spilled).length;
    expect(spilled).toBeGreaterThan(0);
    expect(spilled).toBeLessThan(80);
    expect(spool.memoryHeld).toBeLessThanOrEqual(MEMORY_BUDGET + spilled * SINK_BUFFER);
    // The first sinks took the budget, the last ones stream to files; either way the message is committed whole.
    expect(sinks.slice(0, 5).every((s) => !s.spilled)).toBe(true);
    expect(sinks.slice(-5).every((s) => s.spilled)).toBe(true);
    await Promise.all([...sinks.slice(0, 5), ...sinks.slice(-5)].map((s) => s.commit(envelope(["bob@example.test"]))));
    for (const s of sinks.slice(5, -5)) s.abort();
    expect(spool.memoryHeld).toBe(0);
    expect(readdirSync(dir).filter((f) => f.endsWith(".msg")).length).toBe(5);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    for (const s of sinks.slice(-5)) expect(openStored(dir, s.id)!.size).toBe(mib.length);
    await spool.close();
  });
});

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
