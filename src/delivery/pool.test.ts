import { describe, expect, test } from "vitest";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Envelope } from "../mail/index.ts";
import { openStored, parseToken, recover, SegmentReader, Spool, storedFromItem } from "../queue/index.ts";
import { DeliveryPool, MaildirCourier } from "./index.ts";
import { defaultRemoteSettings } from "./remote/index.ts";
import { CaptureServer } from "../../test/helpers/capture-server.ts";
import type { DeliveryResult } from "./index.ts";
import { localEnvelope } from "../../test/helpers/envelope.ts";
import { commitMessages } from "../../test/helpers/spool.ts";
import { tempDir } from "../../test/helpers/server.ts";

// The worker entry of the server (it runs runDeliveryWorker with the Bun dialer).
const WORKER_URL = new URL("../app/delivery-worker.ts", import.meta.url);
const temp = () => tempDir("ringmta-pool-");

const envelope = (rcpts: string[]): Envelope => localEnvelope(rcpts, { body: "7BIT" });

function waitFor(cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error("timed out"));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

const countNew = (mail: string, boxes: string[]) =>
  boxes.reduce((n, b) => n + readdirSync(join(mail, "example.test", b, "new")).length, 0);

describe("DeliveryPool", () => {
  test("2,000 messages to 3 local mailboxes through 2 workers: exactly 2,000 files, spool empty; one worker per mailbox", async () => {
    const root = temp();
    const queueDir = join(root, "queue");
    const mailDir = join(root, "mail");
    let done = 0;
    const failures: DeliveryResult[] = [];
    /** Which workers delivered to each mailbox. */
    const owners = new Map<string, Set<number>>();
    const pool = new DeliveryPool({
      workerUrl: WORKER_URL,
      workers: 2,
      queueDir,
      mailDir,
      hostname: "mx.test",
      retryIntervalsMs: [60_000],
      onResult: (r, worker) => {
        if (r.done && r.outcomes.every((o) => o.outcome.kind === "delivered")) done++;
        else failures.push(r);
        for (const o of r.outcomes) owners.set(o.address, (owners.get(o.address) ?? new Set()).add(worker));
      },
      onReleased: (ref) => {
        released++;
        spool.release(ref);
      },
    });
    await pool.start();
    expect(pool.healthy()).toBe(true);
    const spool = new Spool({ dir: queueDir, onCommitted: (c) => pool.enqueue(c.ref, false, c.envelope) });
    let released = 0;
    const boxes = ["u0", "u1", "u2"];
    const total = 2000;
    const t0 = performance.now();
    const body = (i: number) => new TextEncoder().encode(`Received: by mx.test; x\r\nSubject: m${i}\r\n\r\nbody ${i}\r\n`);
    // 100 concurrent "sessions", as a busy server would have.
    for (let base = 0; base < total; base += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, k) => {
          const i = base + k;
          const sink = spool.begin();
          sink.write(body(i));
          return sink.commit(envelope([`${boxes[i % 3]}@example.test`]));
        }),
      );
    }
    await waitFor(() => done + failures.length === total);
    const secs = (performance.now() - t0) / 1000;
    console.log(`pool: ${total} messages committed and delivered in ${secs.toFixed(2)} s = ${Math.round(total / secs)} msgs/s`);
    expect(failures).toEqual([]);
    await pool.stop();
    expect(pool.healthy()).toBe(false);
    expect(countNew(mailDir, boxes)).toBe(total);
    // Mailbox affinity: each mailbox's directory had one writer.
    expect([...owners.keys()].sort()).toEqual(boxes.map((b) => `${b}@example.test`));
    for (const ws of owners.values()) expect(ws.size).toBe(1);
    // Every item was a segment record, released by its delivery; no file item was made.
    expect(released).toBe(total);
    expect(readdirSync(queueDir)).toEqual(["segments"]);
    await spool.close();
    const first = readdirSync(join(mailDir, "example.test", "u1", "new"))[0];
    expect(readFileSync(join(mailDir, "example.test", "u1", "new", first), "utf8")).toMatch(
      /^Return-Path: <alice@example\.test>\r\nDelivered-To: u1@example\.test\r\nReceived: by mx\.test; x\r\nSubject: m\d+\r\n\r\nbody \d+\r\n$/,
    );
  });

  test("a worker that dies with claimed items: they are queued again for its slot and delivered once each", async () => {
    const root = temp();
    const queueDir = join(root, "queue");
    const mailDir = join(root, "mail");
    const marker = join(root, "died");
    process.env.RINGMTA_TEST_DIE_MARKER = marker;
    const results: Array<{ r: DeliveryResult; worker: number }> = [];
    const pool = new DeliveryPool({
      workerUrl: new URL("../../test/helpers/dying-worker.ts", import.meta.url),
      workers: 2,
      queueDir,
      mailDir,
      hostname: "mx.test",
      retryIntervalsMs: [60_000],
      onResult: (r, worker) => results.push({ r, worker }),
      onReleased: (ref) => spool.release(ref),
    });
    await pool.start();
    const spool = new Spool({ dir: queueDir, onCommitted: (c) => pool.enqueue(c.ref, false, c.envelope) });
    const total = 30;
    await Promise.all(
      Array.from({ length: total }, (_, i) => {
        const sink = spool.begin();
        sink.write(new TextEncoder().encode(`Subject: ${i}\r\n\r\n`));
        return sink.commit(envelope(["bob@example.test"]));
      }),
    );
    await waitFor(() => results.filter((x) => x.r.done).length === total);
    delete process.env.RINGMTA_TEST_DIE_MARKER;
    const died = readFileSync(marker, "utf8").split("\n");
    expect(died.length).toBeGreaterThan(0);
    // Every item delivered exactly once, those the dead worker had claimed too (re-checked: FLAG_RECHECK).
    expect(readdirSync(join(mailDir, "example.test", "bob", "new")).length).toBe(total);
    expect(results.every((x) => x.r.outcomes.every((o) => o.outcome.kind === "delivered"))).toBe(true);
    // One mailbox, one owner: the replacement took over the dead worker's slot and its ring.
    expect(new Set(results.map((x) => x.worker)).size).toBe(1);
    await pool.stop();
    await spool.close();
  });

  test("a segment item for two remote destinations: the first 250 is on record before the other transaction ends", async () => {
    const root = temp();
    const queueDir = join(root, "queue");
    const fast = await CaptureServer.start();
    const slow = await CaptureServer.start({ delayMs: { DOT: 1500 } });
    const results: DeliveryResult[] = [];
    const pool = new DeliveryPool({
      workerUrl: WORKER_URL,
      workers: 1,
      queueDir,
      mailDir: join(root, "mail"),
      hostname: "mx.test",
      retryIntervalsMs: [60_000],
      remote: defaultRemoteSettings("mx.test", { routes: { "fast.test": `127.0.0.1:${fast.port}`, "slow.test": `127.0.0.1:${slow.port}` } }),
      onResult: (r) => results.push(r),
      onReleased: (ref) => spool.release(ref),
    });
    await pool.start();
    const spool = new Spool({ dir: queueDir, onCommitted: (c) => pool.enqueue(c.ref, false, c.envelope) });
    const sink = spool.begin();
    sink.write(new TextEncoder().encode("Subject: two\r\n\r\nx\r\n"));
    const env = localEnvelope([], { body: "7BIT" });
    env.recipients = ["x@fast.test", "y@slow.test"].map((a) => ({ rcpt: a, address: a, route: { kind: "remote", domain: a.split("@")[1] } }));
    await sink.commit(env);
    // While the slow destination still holds its reply to the data, the fast one's 250 is durable already
    // (CONTRACT: the duplicate window is that record), so the item was written out of its segment.
    await waitFor(() => fast.messages.length === 1);
    await waitFor(() => openStored(queueDir, sink.id)?.state[0].status === "delivered", 1000);
    expect(results).toEqual([]);
    await waitFor(() => results.length === 1);
    expect(results[0]).toMatchObject({ done: true, kept: false });
    expect(existsSync(join(queueDir, `${sink.id}.msg`))).toBe(false);
    await pool.stop();
    await spool.close();
    await fast.close();
    await slow.close();
  });

  test("after a crash: recovered items are delivered once, also those delivered before the crash", async () => {
    const root = temp();
    const queueDir = join(root, "queue");
    const mailDir = join(root, "mail");
    // Committed into a segment; the crash is simulated by not delivering them before recover().
    const committed = await commitMessages(
      queueDir,
      Array.from({ length: 20 }, (_, i) => ({ body: `Subject: ${i}\r\n\r\n`, envelope: envelope(["bob@example.test", "carol@example.test"]) })),
    );
    const ids = committed.map((c) => c.id);
    expect(committed.every((c) => c.ref.startsWith(`${c.id}:`))).toBe(true);
    // The previous run delivered the first 10 (one moved to cur/ by a reader) but died before recording it.
    const courier = new MaildirCourier({ mailDir, hostname: "mx.test" });
    const segments = new SegmentReader(queueDir);
    for (const c of committed.slice(0, 10)) {
      const { id, seg, offset } = parseToken(c.ref);
      const item = storedFromItem(segments.read(seg!, offset, id)!, id);
      await courier.deliver(item.message, item.envelope.recipients);
    }
    segments.close();
    const bobNew = join(mailDir, "example.test", "bob", "new");
    const moved = readdirSync(bobNew)[0];
    const { renameSync } = await import("node:fs");
    renameSync(join(bobNew, moved), join(mailDir, "example.test", "bob", "cur", `${moved}:2,S`));
    writeFileSync(join(queueDir, `${ids[19]}x.tmp`), "stray");

    const r = recover(queueDir);
    expect(r.items.length).toBe(20);
    expect(r.fromSegments).toBe(20);
    let results = 0;
    const pool = new DeliveryPool({
      workerUrl: WORKER_URL,
      workers: 2,
      queueDir,
      mailDir,
      hostname: "mx.test",
      retryIntervalsMs: [60_000],
      onResult: () => results++,
    });
    await pool.start();
    for (const it of r.items) pool.enqueue(it.id, true);
    await waitFor(() => results === 20);
    await pool.stop();
    for (const who of ["bob", "carol"]) {
      const box = join(mailDir, "example.test", who);
      expect(readdirSync(join(box, "new")).length + readdirSync(join(box, "cur")).length).toBe(20);
    }
    expect(readdirSync(queueDir)).toEqual(["segments"]);
    expect(readdirSync(join(queueDir, "segments"))).toEqual([]);
  });

  test("a deferred recipient is recorded, retried on schedule and then delivered", async () => {
    const root = temp();
    const queueDir = join(root, "queue");
    const mailDir = join(root, "mail");
    const box = join(mailDir, "example.test", "bob");
    mkdirSync(box, { recursive: true });
    writeFileSync(join(box, "new"), "not a directory"); // the mailbox is broken for now
    const results: DeliveryResult[] = [];
    const pool = new DeliveryPool({
      workerUrl: WORKER_URL,
      workers: 1,
      queueDir,
      mailDir,
      hostname: "mx.test",
      retryIntervalsMs: [300],
      onResult: (r) => results.push(r),
    });
    await pool.start();
    const spool = new Spool({ dir: queueDir, onCommitted: (c) => pool.enqueue(c.ref) });
    const sink = spool.begin();
    sink.write(new TextEncoder().encode("Subject: later\r\n\r\n"));
    await sink.commit(envelope(["bob@example.test", "carol@example.test"]));
    await waitFor(() => results.length === 1);
    expect(results[0].done).toBe(false);
    expect(results[0].outcomes.map((o) => o.outcome.kind).sort()).toEqual(["deferred", "delivered"]);
    expect(results[0].nextAttempt).toBeGreaterThan(Date.now());
    expect(pool.scheduledCount).toBe(1);
    const state = openStored(queueDir, sink.id)!.state;
    expect(state.map((s) => s.status)).toEqual(["deferred", "delivered"]);
    expect(state[0].last).toMatchObject({ kind: "deferred", code: 451, enhanced: "4.3.0" });
    rmSync(join(box, "new")); // repaired before the retry
    await waitFor(() => results.length === 2);
    expect(results[1].done).toBe(true);
    expect(results[1].outcomes).toEqual([{ index: 0, address: "bob@example.test", courier: "local", ms: expect.any(Number), outcome: expect.objectContaining({ kind: "delivered" }) }]);
    await pool.stop();
    expect(readdirSync(join(box, "new")).length).toBe(1);
    expect(readdirSync(join(mailDir, "example.test", "carol", "new")).length).toBe(1);
    // The first attempt wrote the item out of its segment as <id>.msg (a state log needs it); now both are gone.
    expect(readdirSync(queueDir)).toEqual(["segments"]);
    await spool.close();
  });
});

describe("DeliveryPool.wants", () => {
  test("true only when a pending recipient has a courier (local and remote both have one)", () => {
    const local = envelope(["bob@example.test"]);
    const remote: Envelope = { ...local, recipients: [{ rcpt: "x@far.test", address: "x@far.test", route: { kind: "remote", domain: "far.test" } }] };
    expect(DeliveryPool.wants(local)).toBe(true);
    expect(DeliveryPool.wants(local, [{ status: "delivered" }])).toBe(false);
    expect(DeliveryPool.wants(local, [{ status: "deferred" }])).toBe(true);
    expect(DeliveryPool.wants(remote)).toBe(true);
    expect(DeliveryPool.wants(remote, [{ status: "failed" }])).toBe(false);
  });
});
