/**
 * CONTRACT "Guarantees": a 250 to end-of-data means fsync'd and delivered exactly once, also across kill -9.
 * Clients send in a loop, the server is SIGKILLed mid-stream and restarted; every acknowledged message must be in
 * the Maildir exactly once, and no message (acknowledged or not) twice.
 */
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { SmtpClient, dataPayload, maildirFiles, simpleMessage, sleep, uniqueId, useServer, waitFor } from "../helpers/index.ts";

const srv = useServer();

/** Sends messages on one connection until it breaks; pushes each Message-ID that got 250 to `acked`. */
async function sender(port: number, tag: string, acked: string[], stop: { now: boolean }): Promise<void> {
  let c: SmtpClient;
  try {
    c = await SmtpClient.connect(port);
    await c.hello();
  } catch {
    return;
  }
  try {
    for (let n = 0; !stop.now; n++) {
      const mid = uniqueId(`${tag}-${n}`);
      await c.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
      const codes = [(await c.readReply(5_000)).code, (await c.readReply(5_000)).code, (await c.readReply(5_000)).code];
      if (codes.join() !== "250,250,354") throw new Error(`unexpected ${codes.join()}`);
      await c.send(dataPayload(simpleMessage({ messageId: mid, lines: [`message ${n} of ${tag}`] })));
      const r = await c.readReply(10_000);
      if (r.code === 250) acked.push(mid);
      else throw new Error(`end of data: ${r.raw}`);
    }
  } catch {
    // The server was killed under us: that is the point of the test.
  } finally {
    c.destroy();
  }
}

function messageIds(dataDir: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const f of maildirFiles(dataDir, "example.test", "bob")) {
    const m = /Message-ID: <([^>]+)>/.exec(readFileSync(f, "latin1"));
    if (m) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  return counts;
}

test("kill -9 mid-stream, restart: every acknowledged message delivered exactly once, none twice", async () => {
  const acked: string[] = [];
  const stop = { now: false };
  const port = srv().ports.mx;
  const senders = [sender(port, "a", acked, stop), sender(port, "b", acked, stop)];
  await sleep(1_000);
  await srv().kill9();
  stop.now = true;
  await Promise.all(senders);
  console.log(`crash test: ${acked.length} messages acknowledged before SIGKILL`);
  expect(acked.length).toBeGreaterThan(0);
  await srv().restart();
  await waitFor(() => {
    const counts = messageIds(srv().dataDir);
    const missing = acked.filter((m) => !counts.has(m));
    if (missing.length) throw new Error(`${missing.length} acknowledged messages not delivered, e.g. ${missing[0]}`);
    return true;
  }, 30_000, 200);
  await sleep(1_000);
  const counts = messageIds(srv().dataDir);
  const twice = [...counts].filter(([, n]) => n > 1).map(([m, n]) => `${m} x${n}`);
  expect(twice).toEqual([]);
  for (const m of acked) expect(counts.get(m), m).toBe(1);
}, 90_000);
