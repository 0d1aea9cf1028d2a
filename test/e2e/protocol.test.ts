/**
 * Protocol features end to end: PIPELINING (RFC 2920), CHUNKING/BDAT (RFC 3030), SMTPUTF8 (RFC 6531).
 * catch_all is on so that any local part of example.test (UTF-8 ones included) is a mailbox.
 */
import { describe, expect, test } from "vitest";
import {
  SmtpClient,
  dataPayload,
  findDelivered,
  readDelivered,
  simpleMessage,
  trickyMessage,
  uniqueId,
  useServer,
  waitFor,
  type Reply,
} from "../helpers/index.ts";

const srv = useServer({ config: "[local]\ncatch_all = true\n" });

async function deliveredBody(address: string, mid: string): Promise<Buffer> {
  const files = await waitFor(() => {
    const f = findDelivered(srv().dataDir, address, `Message-ID: <${mid}>`);
    return f.length > 0 ? f : null;
  }, 15_000);
  expect(files).toHaveLength(1);
  return readDelivered(files[0]).body;
}

async function replies(c: SmtpClient, n: number): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) out.push(await c.readReply());
  return out;
}

async function open(): Promise<SmtpClient> {
  const c = await SmtpClient.connect(srv().ports.mx);
  const ehlo = await c.hello();
  expect(ehlo.code).toBe(250);
  return c;
}

describe("pipelining", () => {
  test("MAIL/RCPT/RCPT/DATA in one write: replies in order, one message to both", async () => {
    const c = await open();
    const mid = uniqueId("pipe");
    await c.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<p1@example.test>\r\nRCPT TO:<p2@example.test>\r\nDATA\r\n");
    expect((await replies(c, 4)).map((r) => r.code)).toEqual([250, 250, 250, 354]);
    const msg = simpleMessage({ messageId: mid, lines: [".dot", "body"] });
    await c.send(dataPayload(msg));
    expect((await c.readReply()).code).toBe(250);
    expect((await c.cmd("QUIT")).code).toBe(221);
    c.destroy();
    expect((await deliveredBody("p1@example.test", mid)).equals(msg)).toBe(true);
    expect((await deliveredBody("p2@example.test", mid)).equals(msg)).toBe(true);
  });

  test("three whole transactions and QUIT in one write; commands right after each final dot", async () => {
    const c = await open();
    const mids = [uniqueId("w1"), uniqueId("w2"), uniqueId("w3")];
    const msgs = mids.map((m, i) => simpleMessage({ messageId: m, lines: [`message ${i}`, ".", "..x"] }));
    const parts: Buffer[] = [];
    for (const m of msgs) {
      parts.push(Buffer.from("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<multi@example.test>\r\nDATA\r\n"), dataPayload(m));
    }
    parts.push(Buffer.from("QUIT\r\n"));
    await c.send(Buffer.concat(parts));
    const codes = (await replies(c, 13)).map((r) => r.code);
    expect(codes).toEqual([250, 250, 354, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221]);
    await c.closed();
    for (let i = 0; i < 3; i++) expect((await deliveredBody("multi@example.test", mids[i])).equals(msgs[i])).toBe(true);
  });
});

describe("chunking", () => {
  test("BDAT in several chunks (split inside CRLF) then BDAT 0 LAST: body byte-identical, dots not unstuffed", async () => {
    const c = await open();
    const mid = uniqueId("bdat");
    const msg = trickyMessage(mid, "chunky@example.test");
    expect((await c.cmd("MAIL FROM:<sender@remote.test> BODY=8BITMIME")).code).toBe(250);
    expect((await c.cmd("RCPT TO:<chunky@example.test>")).code).toBe(250);
    // Cut right between a CR and its LF, and elsewhere at odd places.
    const cr = msg.indexOf("\r\n") + 1;
    const cuts = [0, cr, cr + 7, Math.floor(msg.length / 2), msg.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const chunk = msg.subarray(cuts[i], cuts[i + 1]);
      await c.send(Buffer.concat([Buffer.from(`BDAT ${chunk.length}\r\n`), chunk]));
      const r = await c.readReply();
      expect(r.code, `chunk ${i}: ${r.raw}`).toBe(250);
    }
    expect((await c.cmd("BDAT 0 LAST")).code).toBe(250);
    expect((await c.cmd("QUIT")).code).toBe(221);
    c.destroy();
    expect((await deliveredBody("chunky@example.test", mid)).equals(msg)).toBe(true);
  });

  test("pipelined BDAT chunks and BDAT n LAST in one write", async () => {
    const c = await open();
    const mid = uniqueId("bdat2");
    const msg = simpleMessage({ messageId: mid, lines: [".not stuffed", "end"] });
    const half = Math.floor(msg.length / 2);
    const a = msg.subarray(0, half);
    const b = msg.subarray(half);
    await c.send(
      Buffer.concat([
        Buffer.from("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<chunky2@example.test>\r\n"),
        Buffer.from(`BDAT ${a.length}\r\n`),
        a,
        Buffer.from(`BDAT ${b.length} LAST\r\n`),
        b,
        Buffer.from("QUIT\r\n"),
      ]),
    );
    expect((await replies(c, 5)).map((r) => r.code)).toEqual([250, 250, 250, 250, 221]);
    c.destroy();
    expect((await deliveredBody("chunky2@example.test", mid)).equals(msg)).toBe(true);
  });
});

describe("smtputf8", () => {
  test("UTF-8 sender and UTF-8 recipient local part with SMTPUTF8", async () => {
    const c = await open();
    const ehlo = await c.cmd("EHLO client.test");
    expect(ehlo.lines.map((l) => l.toUpperCase())).toContain("SMTPUTF8");
    const mid = uniqueId("utf8");
    const msg = Buffer.from(
      `From: <ü@example.test>\r\nTo: <jörg@example.test>\r\nSubject: Grüße\r\nMessage-ID: <${mid}>\r\n\r\nÄÖÜ äöü ß\r\n`,
      "utf8",
    );
    expect((await c.cmd("MAIL FROM:<ü@example.test> SMTPUTF8 BODY=8BITMIME")).code).toBe(250);
    expect((await c.cmd("RCPT TO:<jörg@example.test>")).code).toBe(250);
    expect((await c.cmd("DATA")).code).toBe(354);
    await c.send(dataPayload(msg));
    expect((await c.readReply()).code).toBe(250);
    await c.cmd("QUIT");
    c.destroy();
    const files = await waitFor(() => {
      const f = findDelivered(srv().dataDir, "jörg@example.test", `Message-ID: <${mid}>`);
      return f.length > 0 ? f : null;
    }, 15_000);
    expect(files).toHaveLength(1);
    const d = readDelivered(files[0]);
    expect(d.body.equals(msg)).toBe(true);
    expect(d.trace.returnPath).toBe("<ü@example.test>");
    expect(d.trace.deliveredTo).toBe("jörg@example.test");
  });
});
