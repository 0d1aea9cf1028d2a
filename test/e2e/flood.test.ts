/**
 * CONTRACT "Fairness" and the error and rate limits, against the real server (issue 15 #1): a flood of garbage
 * from many connections leaves a normal client served, and every garbage session ends at max_errors; a client
 * over max_connection_rate_per_ip gets 421 4.7.0 at connect. Bounded: 20 garbage connections from 4 loopback
 * addresses, each sending for 3 s as fast as its socket drains, then waiting (at most 25 s) for the server to
 * close it.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { describe, expect, test } from "vitest";
import { SmtpClient, countMessageId, sendMail, simpleMessage, sleep, uniqueId, useServer, waitFor } from "../helpers/index.ts";

const GARBAGE_CONNECTIONS = 20;
const SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
const SEND_MS = 3_000;
const CLOSE_WITHIN_MS = 25_000;

/** Random bytes, with a CRLF now and then so that some "lines" end (unknown commands) and some run long. */
function garbage(): Buffer {
  const b = randomBytes(16 * 1024);
  for (let i = 150 + (b[0]! % 100); i < b.length - 1; i += 50 + b[i]! * 8) {
    b[i] = 13;
    b[i + 1] = 10;
  }
  return b;
}

interface GarbageResult {
  source: string;
  received: string;
  closedAfterMs: number;
  sentBytes: number;
}

/** One garbage client: sends as fast as the socket drains for SEND_MS, then waits for the server to close. */
function garbageClient(port: number, source: string): Promise<GarbageResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let sent = 0;
    let closed = false;
    const s: Socket = connect({ host: "127.0.0.1", port, localAddress: source });
    const pump = (): void => {
      while (!closed && Date.now() - started < SEND_MS) {
        const g = garbage();
        sent += g.length;
        if (!s.write(g)) return; // wait for drain
      }
    };
    s.on("connect", pump);
    s.on("drain", pump);
    s.on("data", (d: Buffer) => chunks.push(d));
    // The server may reset a connection it closed while our garbage was still in flight: not a failure.
    s.on("error", () => {});
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`garbage connection from ${source} still open after ${CLOSE_WITHIN_MS} ms`));
    }, CLOSE_WITHIN_MS);
    s.on("close", () => {
      closed = true;
      clearTimeout(timer);
      resolve({ source, received: Buffer.concat(chunks).toString("latin1"), closedAfterMs: Date.now() - started, sentBytes: sent });
    });
  });
}

describe("garbage flood: error limit and fairness", () => {
  const srv = useServer({ config: "[local]\ncatch_all = true\n" });

  test(`${GARBAGE_CONNECTIONS} garbage connections: each ends with 421 4.7.0; a normal client's transactions all succeed meanwhile`, async () => {
    const port = srv().ports.mx;
    const flood = Promise.all(
      Array.from({ length: GARBAGE_CONNECTIONS }, (_, i) => garbageClient(port, SOURCES[i % SOURCES.length]!)),
    );
    let floodDone = false;
    void flood.finally(() => (floodDone = true)).catch(() => {});

    // The normal client: one transaction after another on fresh connections while the flood lasts.
    const ids: string[] = [];
    const latencies: number[] = [];
    const failures: string[] = [];
    const t0 = Date.now();
    while (!floodDone && Date.now() - t0 < CLOSE_WITHIN_MS) {
      const c = await SmtpClient.connect(port);
      await c.hello(); // reads the 220 first
      for (let k = 0; k < 5; k++) {
        const id = uniqueId("fair");
        const start = Date.now();
        const r = await sendMail(c, "sender@remote.test", ["fair@example.test"], simpleMessage({ messageId: id }));
        latencies.push(Date.now() - start);
        if (r.final?.code !== 250) failures.push(`${id}: ${r.final?.raw ?? r.mail.raw}`);
        else ids.push(id);
        await sleep(50); // a steady client, not a second flood
      }
      await c.cmd("QUIT");
      c.destroy();
    }
    const results = await flood;

    expect(failures).toEqual([]);
    expect(ids.length).toBeGreaterThanOrEqual(5);
    for (const r of results) {
      // The last reply is the error limit's 421 4.7.0, and the server closed the connection after it.
      const last = r.received.trimEnd().split("\r\n").at(-1) ?? "";
      expect(last.startsWith("421 4.7.0"), `${r.source}: ${JSON.stringify(r.received.slice(-200))}`).toBe(true);
      // Error replies before it: at most max_errors - 1 of them, so the limit did its job.
      expect(r.received.split("\r\n").filter((l) => /^5\d\d /.test(l)).length).toBeLessThanOrEqual(19);
    }
    // A transaction never waited behind the flood for long (generous: 2 cores shared by the whole suite).
    latencies.sort((a, b) => a - b);
    expect(latencies[Math.floor(latencies.length / 2)]!).toBeLessThan(1_000);
    // 250 means stored; a sample is checked in the mailbox (a scan per id of hundreds would dominate the test).
    const sample = ids.filter((_, k) => k % Math.ceil(ids.length / 8) === 0);
    await waitFor(() => sample.every((id) => countMessageId(srv().dataDir, "fair@example.test", id) === 1), 20_000);
    // Still serving after it all.
    const after = await SmtpClient.connect(port);
    expect((await after.readReply()).code).toBe(220);
    after.destroy();
  }, 60_000);

  test("one connection sending 20,000 x BOGUS gets at most 20 replies, the last 421 4.7.0", async () => {
    const c = await SmtpClient.connect(srv().ports.mx, { localAddress: "127.0.0.9" });
    expect((await c.readReply()).code).toBe(220);
    void c.send(Buffer.from("BOGUS\r\n".repeat(20_000))).catch(() => {});
    await c.closed(20_000);
    const lines = c.pending.toString("latin1").trimEnd().split("\r\n");
    expect(lines.length).toBe(20);
    expect(lines.slice(0, 19).every((l) => l.startsWith("500 5.5.2"))).toBe(true);
    expect(lines[19]!.startsWith("421 4.7.0")).toBe(true);
  }, 30_000);
});

describe("a stream that never ends a line", () => {
  const srv = useServer();

  test("bytes without CRLF as fast as the socket drains: closed by the error limit with 421 4.7.0", async () => {
    // A raw socket: the server's close may come with a reset (our bytes still unread there), which the test
    // client's reply reader treats as an error; what arrived before it is what counts.
    const s = connect({ host: "127.0.0.1", port: srv().ports.mx, localAddress: "127.0.0.8" });
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString("latin1")));
    s.on("error", () => {});
    const block = Buffer.alloc(256 * 1024, 0x41);
    let sent = 0;
    const pump = (): void => {
      while (!s.destroyed && sent < 64 * block.length) {
        sent += block.length;
        if (!s.write(block)) return;
      }
    };
    s.on("connect", pump);
    s.on("drain", pump);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`still open after sending ${sent} bytes`)), 20_000);
      s.on("close", () => {
        clearTimeout(t);
        resolve();
      });
    });
    expect(got).toMatch(/^220 [^\r]*\r\n421 4\.7\.0 [^\r]*\r\n$/);
  }, 40_000);
});

describe("max_connection_rate_per_ip = 3", () => {
  const srv = useServer({ config: "[limits]\nmax_connection_rate_per_ip = 3\n" });

  test("the 4th connection within a minute from one address gets 421 4.7.0 at connect; other addresses are served", async () => {
    const port = srv().ports.mx;
    const open: SmtpClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await SmtpClient.connect(i === 1 ? srv().ports.submission : port, { localAddress: "127.0.0.6" });
      expect((await c.readReply()).code).toBe(220);
      open.push(c);
    }
    // Counted over all listeners: the fourth, on either listener, is refused even after the others closed.
    for (const c of open) c.destroy();
    await sleep(100);
    for (const p of [port, srv().ports.submission]) {
      const c = await SmtpClient.connect(p, { localAddress: "127.0.0.6" });
      const r = await c.readReply();
      expect([r.code, r.enhanced]).toEqual([421, "4.7.0"]);
      await c.closed(5_000);
    }
    const other = await SmtpClient.connect(port, { localAddress: "127.0.0.7" });
    expect((await other.readReply()).code).toBe(220);
    other.destroy();
  });
});
