/**
 * CONTRACT: memory per connection is bounded; a 100 MB message grows the server's RSS by less than 64 MB. The
 * message is streamed in 64 KiB writes that wait for 'drain' (backpressure) and must arrive complete. Also with
 * the inbound checks on and an ARC set in the header, which sends the message through mailauth's ARC verifier
 * (the body hashed by our own canonicalization: 0.54 s for 100 MiB against 0.3 s unchecked, 1.4 s with mailauth's).
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { afterAll, expect, test } from "vitest";
import { SmtpClient, maildirFiles, sleep, uniqueId, useServer, waitFor, type Srv } from "../helpers/index.ts";
import { startZoneServer } from "../spf/zone-server.ts";

const srv = useServer({ config: "[limits]\nmax_message_size = 209715200\n" });
// DKIM and ARC on, no SPF or DMARC. The ARC set's key lookup gets a quick NXDOMAIN from an empty zone (a closed
// port would make the message wait out the resolver's timeouts, which is not what this test measures).
const zone = await startZoneServer();
afterAll(() => zone.stop());
const checked = useServer({
  config: `[limits]\nmax_message_size = 209715200\n[dns]\nservers = ["${zone.server}"]\n[checks]\nspf = "off"\ndkim = "on"\narc = "on"\ndmarc = "off"\n`,
});

const BLOCK = 64 * 1024;
const BLOCKS = 1600; // 1600 × 64 KiB = 100 MiB of body

test("a 100 MB message: RSS growth < 64 MB, delivered file has the right size", () => bigMessage(srv, ""), 240_000);

test("the same with DKIM and ARC checks on and an ARC set in the header (mailauth reads the ARC chain, our hashers the body)", () =>
  bigMessage(
    checked,
    "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=fwd.test; s=arc; t=1764720000; b=AAAA\r\n" +
      "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=fwd.test; s=arc; h=from; bh=AAAA; b=AAAA\r\n" +
      "ARC-Authentication-Results: i=1; fwd.test; spf=pass\r\n",
  ), 240_000);

async function bigMessage(srv: () => Srv, extra: string): Promise<void> {
  const mid = uniqueId("big");
  const header = Buffer.from(`${extra}Message-ID: <${mid}>\r\nSubject: big\r\n\r\n`);
  // 128 lines of 510 octets + CRLF = one 64 KiB block; no line starts with "." so no dot-stuffing is needed.
  const block = Buffer.from(("z".repeat(510) + "\r\n").repeat(BLOCK / 512), "latin1");
  expect(block.length).toBe(BLOCK);
  const total = header.length + BLOCKS * BLOCK;

  const c = await SmtpClient.connect(srv().ports.mx);
  await c.hello();
  expect((await c.cmd(`MAIL FROM:<sender@remote.test> SIZE=${total}`)).code).toBe(250);
  expect((await c.cmd("RCPT TO:<bob@example.test>")).code).toBe(250);
  expect((await c.cmd("DATA")).code).toBe(354);

  await sleep(200);
  const before = srv().rssKiB();
  // The kernel's own peak (VmHWM, reset to now) catches spikes between samples; sampling is the fallback.
  const hwmReset = srv().resetHwm();
  let peak = before;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, srv().rssKiB());
    } catch {
      // process gone: the assertions below report it
    }
  }, 25);
  const t0 = Date.now();
  try {
    await c.send(header);
    for (let i = 0; i < BLOCKS; i++) await c.send(block);
    await c.send(".\r\n");
    const r = await c.readReply(120_000);
    expect(r.code, r.raw).toBe(250);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, srv().rssKiB(), hwmReset ? srv().hwmKiB() : 0);
  const growthMiB = (peak - before) / 1024;
  console.log(
    `bigmessage: 100 MiB in ${Date.now() - t0} ms; server RSS before ${(before / 1024).toFixed(1)} MiB, ` +
      `peak ${(peak / 1024).toFixed(1)} MiB, growth ${growthMiB.toFixed(1)} MiB (${hwmReset ? "VmHWM reset before sending" : "sampled VmRSS only"})`,
  );
  await c.cmd("QUIT");
  c.destroy();
  expect(growthMiB).toBeLessThan(64);

  const files = await waitFor(() => {
    const f = maildirFiles(srv().dataDir, "example.test", "bob");
    return f.length === 1 ? f : null;
  }, 60_000);
  // Read only the head to find where the trace fields end; the message begins with our Message-ID line.
  const fd = openSync(files[0], "r");
  const head = Buffer.alloc(8192);
  const n = readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const start = head.subarray(0, n).indexOf(`Message-ID: <${mid}>`);
  expect(start).toBeGreaterThan(0);
  // From our Message-ID line on, the file is the message as sent (the ARC fields, if any, are above it).
  expect(statSync(files[0]).size - start).toBe(total - extra.length);
}
