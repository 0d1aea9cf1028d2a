/**
 * SMTP smuggling (CVE-2023-51764 family): end of data is exactly CRLF "." CRLF (RFC 5321 §4.1.1.4). Any other
 * "end" followed by a smuggled transaction must yield 521 5.5.2, a close, and no message at all.
 */
import { describe, expect, test } from "vitest";
import { SmtpClient, countMessageId, mailboxes, sleep, uniqueId, useServer, waitFor } from "../helpers/index.ts";

const srv = useServer({ config: "[local]\ncatch_all = true\n" });

const ENDINGS: Array<[string, string]> = [
  ["LF.CRLF", "\n.\r\n"],
  ["CRLF.LF", "\r\n.\n"],
  ["LF.LF", "\n.\n"],
  ["CR.CRLF", "\r.\r\n"],
  ["CRLF.CR", "\r\n.\r"],
];

async function smuggle(i: number, ending: string, byteByByte: boolean): Promise<void> {
  const orig = `orig${i}${byteByByte ? "b" : ""}@example.test`;
  const victim = `victim${i}${byteByByte ? "b" : ""}@example.test`;
  const mid = uniqueId("outer");
  const evil = uniqueId("smuggled");
  const c = await SmtpClient.connect(srv().ports.mx);
  await c.hello();
  expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
  expect((await c.cmd(`RCPT TO:<${orig}>`)).code).toBe(250);
  expect((await c.cmd("DATA")).code).toBe(354);
  const head = `Subject: outer\r\nMessage-ID: <${mid}>\r\n\r\nhello`;
  const tail =
    `MAIL FROM:<evil@remote.test>\r\nRCPT TO:<${victim}>\r\nDATA\r\n` +
    `Subject: smuggled\r\nMessage-ID: <${evil}>\r\n\r\nevil\r\n.\r\nQUIT\r\n`;
  if (byteByByte) {
    await c.send(head);
    for (const ch of ending) {
      await sleep(20);
      await c.send(ch).catch(() => undefined);
    }
    await sleep(20);
    await c.send(tail).catch(() => undefined);
  } else {
    await c.send(head + ending + tail);
  }
  const r = await c.readReply();
  expect([r.code, r.enhanced], r.raw).toEqual([521, "5.5.2"]);
  await c.closed(5_000);
  // Give delivery the time it would need to show a wrongly accepted message.
  await sleep(1_000);
  expect(countMessageId(srv().dataDir, victim, evil)).toBe(0);
  expect(countMessageId(srv().dataDir, orig, mid)).toBe(0);
  const boxes = mailboxes(srv().dataDir, "example.test");
  expect(boxes[victim.split("@")[0]] ?? []).toEqual([]);
  expect(boxes[orig.split("@")[0]] ?? []).toEqual([]);
}

describe("smuggling", () => {
  ENDINGS.forEach(([name, ending], i) => {
    test(`${name} then a smuggled transaction in one write: 521, closed, nothing delivered`, () => smuggle(i, ending, false));
    test(`${name} then a smuggled transaction, the ending byte by byte: 521, closed, nothing delivered`, () =>
      smuggle(i, ending, true));
  });

  test("control: a proper CRLF.CRLF ending delivers exactly one message", async () => {
    const mid = uniqueId("proper");
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    await c.send(
      `MAIL FROM:<sender@remote.test>\r\nRCPT TO:<proper@example.test>\r\nDATA\r\n`,
    );
    for (let k = 0; k < 3; k++) expect((await c.readReply()).code).toBe(k < 2 ? 250 : 354);
    await c.send(`Subject: fine\r\nMessage-ID: <${mid}>\r\n\r\nhello\r\n.\r\n`);
    expect((await c.readReply()).code).toBe(250);
    c.destroy();
    await waitFor(() => countMessageId(srv().dataDir, "proper@example.test", mid) === 1, 15_000);
  });
});
