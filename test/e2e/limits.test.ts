/**
 * CONTRACT limits, end to end: max_recipients, max_message_size, command line length, idle_timeout_s,
 * max_connections and max_connections_per_ip.
 */
import { describe, expect, test } from "vitest";
import {
  SmtpClient,
  countMessageId,
  dataPayload,
  mailboxes,
  sendMail,
  simpleMessage,
  sleep,
  uniqueId,
  useServer,
  waitFor,
} from "../helpers/index.ts";

describe("message limits (max_recipients 5, max_message_size 200000)", () => {
  const srv = useServer({ config: "[local]\ncatch_all = true\n" });

  test("recipients beyond 5 get 452 4.5.3 each; the message goes to the first five only", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    const mid = uniqueId("rcpts");
    const to = Array.from({ length: 7 }, (_, i) => `lim${i}@example.test`);
    const r = await sendMail(c, "sender@remote.test", to, simpleMessage({ messageId: mid }));
    expect(r.rcpts.map((x) => (x.code === 250 ? "250" : `${x.code} ${x.enhanced}`))).toEqual([
      ...Array(5).fill("250"),
      "452 4.5.3",
      "452 4.5.3",
    ]);
    expect(r.final?.code).toBe(250);
    c.destroy();
    await waitFor(() => to.slice(0, 5).every((a) => countMessageId(srv().dataDir, a, mid) === 1), 15_000);
    await sleep(300);
    const boxes = mailboxes(srv().dataDir, "example.test");
    expect(boxes.lim5 ?? []).toEqual([]);
    expect(boxes.lim6 ?? []).toEqual([]);
  });

  test("SIZE= over the limit: 552 5.3.4 at MAIL; too large without SIZE=: 552 5.3.4 after data, nothing delivered, next transaction works", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    const ehlo = await c.hello();
    expect(ehlo.lines).toContain("SIZE 200000");
    const m = await c.cmd("MAIL FROM:<sender@remote.test> SIZE=200001");
    expect([m.code, m.enhanced]).toEqual([552, "5.3.4"]);

    const big = uniqueId("big");
    const line = "y".repeat(998);
    const bigMsg = simpleMessage({ messageId: big, to: "size@example.test", lines: Array(250).fill(line) });
    const r = await sendMail(c, "sender@remote.test", ["size@example.test"], bigMsg);
    expect([r.final?.code, r.final?.enhanced]).toEqual([552, "5.3.4"]);

    const ok = uniqueId("fits");
    const okMsg = simpleMessage({ messageId: ok, to: "size@example.test", lines: Array(150).fill(line) });
    const r2 = await sendMail(c, "sender@remote.test", ["size@example.test"], okMsg, "SIZE=" + okMsg.length);
    expect(r2.final?.code).toBe(250);
    c.destroy();
    await waitFor(() => countMessageId(srv().dataDir, "size@example.test", ok) === 1, 15_000);
    expect(countMessageId(srv().dataDir, "size@example.test", big)).toBe(0);
  });

  test("a 1001-octet command line gets 500 5.5.2 and the session continues", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    const long = `RCPT TO:<${"a".repeat(1001 - "RCPT TO:<>\r\n".length - "@example.test".length)}@example.test>`;
    expect(long.length + 2).toBe(1001);
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    const r = await c.cmd(long);
    expect([r.code, r.enhanced]).toEqual([500, "5.5.2"]);
    expect((await c.cmd("RCPT TO:<short@example.test>")).code).toBe(250);
    expect((await c.cmd("QUIT")).code).toBe(221);
    c.destroy();
  });
});

describe("idle timeout (idle_timeout_s 3)", () => {
  const srv = useServer({ config: "[limits]\nidle_timeout_s = 3\n" });

  test("a connection that sends nothing gets 421 4.4.2 and is closed", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    const t0 = Date.now();
    expect((await c.readReply()).code).toBe(220);
    const r = await c.readReply(10_000);
    expect([r.code, r.enhanced]).toEqual([421, "4.4.2"]);
    await c.closed(5_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_500);
  });

  test("slowloris: one byte per second without completing a line still gets 421 4.4.2 within the timeout", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    const t0 = Date.now();
    let stop = false;
    const drip = (async () => {
      const text = "MAIL FROM:<slow@remote.test>" + "x".repeat(100);
      for (let i = 0; !stop && i < text.length; i++) {
        await c.send(text[i]).catch(() => (stop = true));
        await sleep(1000);
      }
    })();
    try {
      const r = await c.readReply(12_000);
      expect([r.code, r.enhanced]).toEqual([421, "4.4.2"]);
      await c.closed(5_000);
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(2_500);
      expect(elapsed).toBeLessThan(9_000);
    } finally {
      stop = true;
      await drip;
      c.destroy();
    }
  }, 30_000);

  test("inside DATA, a byte per second keeps the session alive (bytes count there) and the message is accepted", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.cmd("MAIL FROM:<slow@remote.test>")).code).toBe(250);
    expect((await c.cmd("RCPT TO:<bob@example.test>")).code).toBe(250);
    expect((await c.cmd("DATA")).code).toBe(354);
    const mid = uniqueId("slowdata");
    const payload = dataPayload(simpleMessage({ messageId: mid }));
    const head = payload.subarray(0, payload.length - 6);
    await c.send(head);
    // 6 s of one byte a second: twice the idle timeout, never 2 s without a byte.
    for (const b of payload.subarray(payload.length - 6)) {
      await sleep(1000);
      await c.send(Buffer.of(b));
    }
    const r = await c.readReply();
    expect(r.code, r.raw).toBe(250);
    c.destroy();
    await waitFor(() => countMessageId(srv().dataDir, "bob@example.test", mid) === 1, 15_000);
  }, 30_000);
});

describe("connection limits (max_connections 4, max_connections_per_ip 2)", () => {
  const srv = useServer({ config: "[limits]\nmax_connections = 4\nmax_connections_per_ip = 2\n" });

  async function greeted(port: number, localAddress: string): Promise<SmtpClient> {
    const c = await SmtpClient.connect(port, { localAddress });
    const r = await c.readReply();
    expect(r.code, `greeting for ${localAddress}`).toBe(220);
    return c;
  }

  async function refused(port: number, localAddress: string): Promise<void> {
    const c = await SmtpClient.connect(port, { localAddress });
    const r = await c.readReply();
    expect([r.code, r.enhanced], `at connect from ${localAddress}`).toEqual([421, "4.7.0"]);
    await c.closed(5_000);
  }

  test("per IP and in total, counted over all listeners: 421 4.7.0 at connect; a freed slot is usable again", async () => {
    const { mx, submission } = srv().ports;
    // The readiness probes of startServer have closed; give the server a moment to count them out.
    await waitFor(async () => {
      const c = await greeted(mx, "127.0.0.1");
      c.destroy();
      return true;
    }, 5_000);
    await sleep(200);
    const a1 = await greeted(mx, "127.0.0.1");
    const a2 = await greeted(submission, "127.0.0.1");
    await refused(mx, "127.0.0.1");
    await refused(submission, "127.0.0.1");
    const b1 = await greeted(mx, "127.0.0.2");
    const b2 = await greeted(submission, "127.0.0.2");
    // Four open: the fifth is over max_connections although 127.0.0.3 has none.
    await refused(mx, "127.0.0.3");
    a1.destroy();
    const again = await waitFor(async () => {
      const c = await SmtpClient.connect(mx, { localAddress: "127.0.0.1" });
      const r = await c.readReply();
      if (r.code === 220) return c;
      c.destroy();
      return null;
    }, 5_000);
    expect(again).toBeTruthy();
    for (const c of [a2, b1, b2, again]) c.destroy();
  });
});
