/**
 * CONTRACT SIGTERM: stop accepting; open sessions get up to 5 s to finish, then 421 4.3.2; an unfinished message
 * is discarded; exit 0 within 10 s.
 */
import { describe, expect, test } from "vitest";
import {
  SmtpClient,
  canConnect,
  countMessageId,
  dataPayload,
  simpleMessage,
  sleep,
  uniqueId,
  useServer,
  waitFor,
} from "../helpers/index.ts";

const srv = useServer();

describe("SIGTERM", () => {
  test("idle session and unfinished message get 421 4.3.2, nothing of it delivered, exit 0 within 10 s", async () => {
    const idle = await SmtpClient.connect(srv().ports.mx);
    await idle.hello();
    const mid = uniqueId("unfinished");
    const busy = await SmtpClient.connect(srv().ports.mx);
    await busy.hello();
    expect((await busy.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    expect((await busy.cmd("RCPT TO:<bob@example.test>")).code).toBe(250);
    expect((await busy.cmd("DATA")).code).toBe(354);
    await busy.send(`Message-ID: <${mid}>\r\nSubject: never finished\r\n\r\npartial`);

    const t0 = Date.now();
    const exited = srv().stop();
    await sleep(500);
    expect(await canConnect(srv().ports.mx), "still accepting after SIGTERM").toBe(false);

    const r1 = await idle.readReply(12_000);
    expect([r1.code, r1.enhanced]).toEqual([421, "4.3.2"]);
    await idle.closed(5_000);
    const r2 = await busy.readReply(12_000);
    expect([r2.code, r2.enhanced]).toEqual([421, "4.3.2"]);
    await busy.closed(5_000);

    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(countMessageId(srv().dataDir, "bob@example.test", mid)).toBe(0);
  }, 30_000);

  test("a session mid-transaction can finish its message within the grace period", async () => {
    await srv().restart();
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    expect((await c.cmd("RCPT TO:<alice@example.test>")).code).toBe(250);
    expect((await c.cmd("DATA")).code).toBe(354);
    const exited = srv().stop();
    await sleep(300);
    const mid = uniqueId("grace");
    await c.send(dataPayload(simpleMessage({ messageId: mid, to: "alice@example.test" })));
    const r = await c.readReply(10_000);
    expect(r.code, r.raw).toBe(250);
    expect(await exited).toBe(0);
    // Accepted means durable: after a restart it is delivered.
    await srv().restart();
    await waitFor(() => countMessageId(srv().dataDir, "alice@example.test", mid) === 1, 15_000);
  }, 60_000);
});
