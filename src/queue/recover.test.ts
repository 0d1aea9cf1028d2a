import { describe, expect, test } from "vitest";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { localOutcome } from "../mail/index.ts";
import type { Envelope } from "../mail/index.ts";
import {
  deleteItem,
  listQueue,
  openStored,
  recordOutcomes,
  recover,
  retrySchedule,
  showItem,
  parseToken,
  recoverSegments,
  SegmentReader,
  SyncBatcher,
} from "./index.ts";
import { readSegment } from "./segment.ts";
import { encodeTrailer } from "./item-format.ts";
import { newQueueId } from "./queue-id.ts";
import { localEnvelope } from "../../test/helpers/envelope.ts";
import { commitMessages } from "../../test/helpers/spool.ts";
import { tempDir } from "../../test/helpers/server.ts";

const temp = () => tempDir("ringmta-recover-");

const envelope = (rcpts: string[]): Envelope => localEnvelope(rcpts, { body: "7BIT" });

/** A file item, as the spool leaves one after a restart or a first attempt with something left to do. */
async function commit(dir: string, body: string, rcpts = ["bob@example.test"]): Promise<string> {
  const [c] = await commitMessages(dir, [{ body, envelope: envelope(rcpts) }], { asFiles: true });
  return c!.id;
}

describe("recover", () => {
  test("deletes stray .tmp, moves truncated and corrupt items to corrupt/, returns the good ones", async () => {
    const dir = temp();
    const good = await commit(dir, "Subject: good\r\n\r\nok\r\n");
    const truncated = await commit(dir, "Subject: cut\r\n\r\n" + "x".repeat(5000));
    const garbled = await commit(dir, "Subject: garbled\r\n\r\nzz\r\n");
    truncateSync(join(dir, `${truncated}.msg`), 3000);
    const g = readFileSync(join(dir, `${garbled}.msg`));
    g[g.length - 30] ^= 0xff; // flips a byte of the meta JSON's end
    writeFileSync(join(dir, `${garbled}.msg`), g);
    writeFileSync(join(dir, "0000000000000000ABCD.tmp"), "half a message");
    writeFileSync(join(dir, "0000000000000000YYYY.msg"), "not a spool item at all");
    writeFileSync(join(dir, "0000000000000000ZZZZ.state"), '{"i":0}\n'); // orphan

    const warnings: string[] = [];
    const r = recover(dir, { warn: (_e, f) => warnings.push(String(f.id)) });
    expect(r.items.map((i) => i.id)).toEqual([good]);
    expect(r.items[0].state[0].status).toBe("queued");
    expect(r.corrupt.sort()).toEqual([`0000000000000000YYYY.msg`, `${truncated}.msg`, `${garbled}.msg`].sort());
    expect(r.removed.sort()).toEqual(["0000000000000000ABCD.tmp", "0000000000000000ZZZZ.state"]);
    expect(warnings.length).toBe(3);
    expect(readdirSync(dir).sort()).toEqual([`${good}.msg`, "corrupt", "segments"]);
    expect(readdirSync(join(dir, "corrupt")).length).toBe(3);
  });

  test("items with every recipient delivered are removed; done with a failure are returned as finished", async () => {
    const dir = temp();
    const b = new SyncBatcher();
    const delivered = await commit(dir, "a\r\n", ["x@a.test", "y@a.test"]);
    const failed = await commit(dir, "b\r\n", ["x@a.test", "y@a.test"]);
    const partial = await commit(dir, "c\r\n", ["x@a.test", "y@a.test"]);
    const rec = (index: number, status: "delivered" | "failed" | "deferred") => ({
      index,
      attempts: 1,
      nextAttempt: status === "deferred" ? Date.now() + 60_000 : 0,
      outcome: localOutcome(status, status === "delivered" ? 250 : status === "failed" ? 550 : 451, "", `${status}!`),
    });
    await recordOutcomes(dir, delivered, [rec(0, "delivered"), rec(1, "delivered")], b);
    await recordOutcomes(dir, failed, [rec(0, "delivered"), rec(1, "failed")], b);
    await recordOutcomes(dir, partial, [rec(0, "delivered"), rec(1, "deferred")], b);
    const r = recover(dir);
    expect(r.items.map((i) => i.id)).toEqual([partial]);
    expect(r.items[0].state.map((s) => s.status)).toEqual(["delivered", "deferred"]);
    expect(r.finished.map((i) => i.id)).toEqual([failed]);
    expect(r.removed).toEqual([`${delivered}.msg`]);
    expect(existsSync(join(dir, `${delivered}.state`))).toBe(false);
  });

  test("a torn last state line is ignored, and the next append starts on a fresh line", async () => {
    const dir = temp();
    const b = new SyncBatcher();
    const id = await commit(dir, "a\r\n", ["x@a.test", "y@a.test"]);
    await recordOutcomes(dir, id, [{ index: 0, attempts: 1, nextAttempt: 5, outcome: localOutcome("deferred", 451, "4.0.0", "r1") }], b);
    appendFileSync(join(dir, `${id}.state`), '{"i":1,"s":"deliv'); // crash mid-write
    expect(openStored(dir, id)!.state.map((s) => s.status)).toEqual(["deferred", "queued"]);
    await recordOutcomes(dir, id, [{ index: 1, attempts: 1, nextAttempt: 0, outcome: localOutcome("failed", 550, "5.0.0", "r2") }], b);
    const st = openStored(dir, id)!.state;
    expect(st.map((s) => s.status)).toEqual(["deferred", "failed"]);
    expect(st[1].last).toEqual({ kind: "failed", code: 550, enhanced: "5.0.0", text: "r2" });
  });

  test("a state log of the previous format (reply strings) still loads, converted once as it is read", async () => {
    const dir = temp();
    const id = await commit(dir, "a\r\n", ["x@a.test", "y@a.test", "z@a.test"]);
    writeFileSync(
      join(dir, `${id}.state`),
      '{"i":0,"s":"deferred","a":2,"n":99,"r":"451 4.7.1 greylisted, try again","m":"mx.a.test"}\n' +
        '{"i":1,"s":"deferred","a":1,"n":5,"r":"4.3.0 maildir delivery to y@a.test failed: EIO"}\n' +
        '{"i":2,"s":"delivered","a":1,"n":0,"r":"250 ok","m":"mx.a.test","l":1}\n',
    );
    const st = openStored(dir, id)!.state;
    expect(st[0]).toEqual({ status: "deferred", attempts: 2, nextAttempt: 99, last: { kind: "deferred", code: 451, enhanced: "4.7.1", text: "greylisted, try again", remoteMta: "mx.a.test" } });
    expect(st[1].last).toEqual({ kind: "deferred", code: 451, enhanced: "4.3.0", text: "maildir delivery to y@a.test failed: EIO" });
    expect(st[2].last).toEqual({ kind: "delivered", code: 250, enhanced: "", text: "ok", remoteMta: "mx.a.test", relayed: true });
    // queue list keeps its contract shape for such items.
    expect(listQueue(dir)[0].recipients.map((r) => r.last_reply)).toEqual([
      "451 4.7.1 greylisted, try again",
      "451 4.3.0 maildir delivery to y@a.test failed: EIO",
      "250 ok",
    ]);
    expect(recover(dir).items.map((i) => i.id)).toEqual([id]);
  });
});

describe("item format versions", () => {
  test("a v1 item written by an earlier version still recovers and reads as before", async () => {
    const dir = temp();
    mkdirSync(dir, { recursive: true });
    const id = newQueueId();
    const body = new TextEncoder().encode("Received: by old\r\nSubject: v1\r\n\r\nbody\r\n");
    const meta = new TextEncoder().encode(JSON.stringify({ v: 1, id, envelope: localEnvelope(["x@a.test"], { arrival: 5 }) }));
    writeFileSync(join(dir, `${id}.msg`), Buffer.concat([body, meta, encodeTrailer(body.length, meta.length)]));
    const r = recover(dir);
    expect(r.items.map((i) => i.id)).toEqual([id]);
    expect(r.corrupt).toEqual([]);
    const item = openStored(dir, id)!;
    expect(item.message.size).toBe(body.length);
    expect(Buffer.concat([...item.message.chunks()]).equals(Buffer.from(body))).toBe(true);
  });

  test("v2 carries the prepended header fields, from a segment record through recovery; a bad prepend is corrupt", async () => {
    const dir = temp();
    const prepend = "X-Test: 1\r\n";
    const [c] = await commitMessages(dir, [{ body: "Received: by us\r\n\r\nb\r\n", envelope: localEnvelope(["x@a.test"]), prepend }]);
    expect(recover(dir).fromSegments).toBe(1);
    const item = openStored(dir, c.id)!;
    expect(Buffer.concat([...item.message.chunks()]).toString()).toBe("X-Test: 1\r\nReceived: by us\r\n\r\nb\r\n");
    expect(item.size).toBe(prepend.length + 22);
    expect(listQueue(dir)[0].size).toBe(item.size);
    const text = readFileSync(join(dir, `${c.id}.msg`), "latin1");
    expect(text).toContain('"v":2');
    writeFileSync(join(dir, `${c.id}.msg`), text.replace(/"prepend":"[^"]*"/, (m) => m.slice(0, 11) + "*" + m.slice(12)), "latin1");
    expect(recover(dir).corrupt).toEqual([`${c.id}.msg`]);
  });
});

describe("listQueue / showItem / deleteItem", () => {
  test("lists items with ISO times and per-recipient state; delete removes msg and state", async () => {
    const dir = temp();
    const b = new SyncBatcher();
    const a = await commit(dir, "Subject: a\r\n\r\n", ["x@a.test", "y@a.test"]);
    const c = await commit(dir, "Subject: c\r\n\r\n");
    const next = Date.now() + 300_000;
    await recordOutcomes(dir, a, [{ index: 1, attempts: 2, nextAttempt: next, outcome: localOutcome("deferred", 451, "", "busy") }], b);
    const list = listQueue(dir);
    expect(list.map((e) => e.id)).toEqual([a, c]);
    expect(list[0]).toMatchObject({ sender: "alice@example.test", size: 14 });
    expect(list[0].arrival).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(list[0].recipients).toEqual([
      { address: "x@a.test", state: "queued", attempts: 0, next_attempt: null, last_reply: "" },
      { address: "y@a.test", state: "deferred", attempts: 2, next_attempt: new Date(next).toISOString(), last_reply: "451 busy" },
    ]);
    expect(showItem(dir, "../etc")).toBeNull();
    expect(deleteItem(dir, a)).toBe(true);
    expect(deleteItem(dir, a)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual([`${c}.msg`, "segments"]);
    expect(listQueue(join(dir, "nope"))).toEqual([]);
  });

  test("items still in a segment are listed and shown; delete marks them done durably, and recover skips them", async () => {
    const dir = temp();
    const file = await commit(dir, "Subject: f\r\n\r\n");
    const [s1, s2] = await commitMessages(dir, [
      { body: "Subject: s1\r\n\r\n", envelope: envelope(["x@a.test"]) },
      { body: "Subject: s2\r\n\r\n", envelope: envelope(["y@a.test"]) },
    ]);
    expect(listQueue(dir).map((e) => e.id)).toEqual([file, s1!.id, s2!.id]);
    expect(showItem(dir, s2!.id)).toMatchObject({ id: s2!.id, size: 15, recipients: [{ address: "y@a.test", state: "queued" }] });
    expect(deleteItem(dir, s1!.id)).toBe(true);
    expect(deleteItem(dir, s1!.id)).toBe(false);
    expect(showItem(dir, s1!.id)).toBeNull();
    expect(listQueue(dir).map((e) => e.id)).toEqual([file, s2!.id]);
    const r = recover(dir);
    expect(r.fromSegments).toBe(1);
    expect(r.items.map((i) => i.id)).toEqual([file, s2!.id]);
    expect(readdirSync(join(dir, "segments"))).toEqual([]);
  });
});

describe("recoverSegments", () => {
  test("writes live records out as <id>.msg, skips done ones and those already written out, drops a torn tail", async () => {
    const dir = temp();
    const items = await commitMessages(
      dir,
      ["a", "b", "c", "d"].map((x) => ({ body: `Subject: ${x}\r\n\r\n${x.repeat(100)}\r\n`, envelope: envelope(["x@a.test"]) })),
    );
    const [a, b, c, d] = items.map((i) => parseToken(i.ref));
    // b is done; c was written out by a worker that then died; d's record is torn by a crash mid-write.
    const reader = new SegmentReader(dir);
    reader.markDone(b!.seg!, b!.id);
    reader.close();
    const cItem = readSegment(join(dir, "segments", `${c!.seg}.seg`)).find((r) => r.id === c!.id)!;
    writeFileSync(join(dir, `${c!.id}.msg`), cItem.item);
    const segFile = join(dir, "segments", `${a!.seg}.seg`);
    const records = readSegment(segFile);
    const last = records.at(-1)!;
    expect(last.id).toBe(d!.id);
    truncateSync(segFile, last.offset + 40);
    const warnings: Array<Record<string, unknown>> = [];
    expect(recoverSegments(dir, { warn: (_e, f) => warnings.push(f) })).toBe(1);
    expect(warnings).toEqual([{ segment: a!.seg, offset: last.offset, dropped_bytes: 40 }]);
    expect(readdirSync(dir).sort()).toEqual([`${a!.id}.msg`, `${c!.id}.msg`, "segments"].sort());
    expect(readdirSync(join(dir, "segments"))).toEqual([]);
    expect(Buffer.from([...openStored(dir, a!.id)!.message.chunks()][0]!).toString()).toBe(`Subject: a\r\n\r\n${"a".repeat(100)}\r\n`);
    expect(recoverSegments(dir)).toBe(0);
  });
});

describe("retrySchedule", () => {
  test("walks the intervals and repeats the last", () => {
    const iv = [60_000, 300_000, 1_800_000];
    expect([1, 2, 3, 4, 10].map((n) => retrySchedule(iv, n))).toEqual([60_000, 300_000, 1_800_000, 1_800_000, 1_800_000]);
    expect(retrySchedule(iv, 0)).toBe(60_000);
  });
});
