/**
 * Alias expansion and recipient decisions: each final mailbox gets a transaction's message once (CONTRACT
 * "Guarantees"), Delivered-To names the final address, unknown users get 550 5.1.1 and nothing.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  SmtpClient,
  countMessageId,
  findDelivered,
  readDelivered,
  sendMail,
  simpleMessage,
  sleep,
  uniqueId,
  useServer,
  waitFor,
} from "../helpers/index.ts";

const srv = useServer();

async function send(to: string[], mid: string): Promise<number[]> {
  const c = await SmtpClient.connect(srv().ports.mx);
  await c.hello();
  const r = await sendMail(c, "sender@remote.test", to, simpleMessage({ messageId: mid }));
  expect(r.final?.code, r.final?.raw).toBe(250);
  await c.cmd("QUIT");
  c.destroy();
  return r.rcpts.map((x) => x.code);
}

/** Waits for `mid` in every listed mailbox, lets delivery settle, then expects exactly one copy in each. */
async function expectOnceIn(addresses: string[], mid: string): Promise<void> {
  await waitFor(() => addresses.every((a) => countMessageId(srv().dataDir, a, mid) > 0), 15_000);
  await sleep(500);
  for (const a of addresses) {
    expect(countMessageId(srv().dataDir, a, mid), `copies in ${a}`).toBe(1);
    const d = readDelivered(findDelivered(srv().dataDir, a, mid)[0]);
    expect(d.trace.deliveredTo.toLowerCase()).toBe(a);
  }
}

describe("aliases", () => {
  test("team@ expands to alice and bob, one copy each", async () => {
    const mid = uniqueId("team");
    expect(await send(["team@example.test"], mid)).toEqual([250]);
    await expectOnceIn(["alice@example.test", "bob@example.test"], mid);
  });

  test("postmaster@ goes to alice", async () => {
    const mid = uniqueId("pm");
    expect(await send(["postmaster@example.test"], mid)).toEqual([250]);
    await expectOnceIn(["alice@example.test"], mid);
    expect(countMessageId(srv().dataDir, "bob@example.test", mid)).toBe(0);
  });

  test("alias and direct recipient of the same mailbox in one transaction: delivered once", async () => {
    const mid = uniqueId("dup");
    expect(await send(["team@example.test", "alice@example.test", "postmaster@example.test"], mid)).toEqual([250, 250, 250]);
    await expectOnceIn(["alice@example.test", "bob@example.test"], mid);
  });

  test("unknown user: 550 5.1.1 at RCPT; the other recipient still gets the message, nothing for the unknown", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    const r = await c.cmd("RCPT TO:<nobody@example.test>");
    expect([r.code, r.enhanced]).toEqual([550, "5.1.1"]);
    c.destroy();
    const mid = uniqueId("unk");
    expect(await send(["nobody@example.test", "bob@example.test"], mid)).toEqual([550, 250]);
    await expectOnceIn(["bob@example.test"], mid);
    expect(existsSync(join(srv().dataDir, "mail", "example.test", "nobody"))).toBe(false);
  });
});
