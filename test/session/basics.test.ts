/**
 * The in-process tier proves itself: a whole transaction lands in the spool with the right envelope, pipelining
 * replies come in one write, byte-by-byte input changes nothing, and STARTTLS drops what was pipelined after it.
 */
import { describe, expect, test } from "vitest";
import { sessionTier, TIER_TLS, type TierReply } from "./harness.ts";

const codes = (rs: TierReply[]): string[] => rs.map((r) => (r.enhanced ? `${r.code} ${r.enhanced}` : `${r.code}`));

const TRANSACTION =
  "EHLO client.test\r\n" +
  "MAIL FROM:<sender@remote.test>\r\n" +
  "RCPT TO:<alice@example.test>\r\n" +
  "RCPT TO:<nobody@example.test>\r\n" +
  "RCPT TO:<team@example.test>\r\n" +
  "DATA\r\n" +
  "Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n" +
  "QUIT\r\n";

describe("session tier", () => {
  test("EHLO/MAIL/RCPT/DATA commits one message with the right envelope and bytes", async () => {
    const t = sessionTier();
    expect(codes(t.replies())).toEqual(["220"]);
    t.send("EHLO client.test\r\n");
    const ehlo = t.replies();
    expect(ehlo).toHaveLength(1);
    expect(ehlo[0]!.lines).toContain("PIPELINING");
    expect(ehlo[0]!.lines).toContain("STARTTLS");
    t.send("MAIL FROM:<sender@remote.test> BODY=8BITMIME\r\n");
    t.send("RCPT TO:<alice@example.test>\r\n");
    t.send("RCPT TO:<team@example.test>\r\n");
    t.send("DATA\r\n");
    expect(codes(t.replies())).toEqual(["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"]);
    t.send("Subject: hi\r\n\r\n..leading dot\r\n.\r\n");
    expect(t.replies()).toEqual([]); // the commit is asynchronous: busy until it resolves
    await t.settle();
    const done = t.replies();
    expect(codes(done)).toEqual(["250 2.0.0"]);
    expect(t.messages).toHaveLength(1);
    const m = t.messages[0]!;
    expect(done[0]!.lines[0]).toContain(m.id);
    expect(m.envelope.sender).toBe("sender@remote.test");
    expect(m.envelope.body).toBe("8BITMIME");
    expect(m.envelope.client).toEqual({ address: "127.0.0.1", helo: "client.test", listener: "mx" });
    // team@ expands to alice and bob; alice appears once (at most once per final mailbox).
    expect(m.envelope.recipients.map((r) => [r.rcpt, r.address])).toEqual([
      ["alice@example.test", "alice@example.test"],
      ["team@example.test", "bob@example.test"],
    ]);
    expect(m.text).toMatch(/^Received: from client\.test /);
    expect(m.text.endsWith("Subject: hi\r\n\r\n.leading dot\r\n")).toBe(true);
    expect(t.metrics.acceptedBytes).toEqual([m.text.length - m.text.indexOf("Subject:")]);
    t.send("QUIT\r\n");
    expect(codes(t.replies())).toEqual(["221 2.0.0"]);
    expect(t.closed).toBe(true);
    await t.settle();
    expect(t.gone).toBe(true);
  });

  test("a failing commit answers 451 and stores nothing; the session goes on", async () => {
    const t = sessionTier();
    t.spool.failNext();
    t.send("EHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n");
    await t.settle();
    expect(codes(t.replies()).slice(1)).toEqual(["250", "250 2.1.0", "250 2.1.5", "354", "451 4.3.0", "250 2.0.0"]);
    expect(t.messages).toEqual([]);
    expect(t.log.named("spool.commit_failed")).toHaveLength(1);
  });

  test("pipelined commands in one chunk get their replies in order in ONE write", async () => {
    const t = sessionTier();
    t.replies();
    t.send("EHLO client.test\r\n");
    t.replies();
    const before = t.conn.writes.length;
    t.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
    await t.settle();
    expect(t.conn.writes.length - before).toBe(1);
    expect(codes(t.replies())).toEqual(["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"]);
  });

  test("the same dialog fed byte by byte gives identical replies and an identical message", async () => {
    const whole = sessionTier();
    whole.send(TRANSACTION);
    await whole.settle();
    const bytewise = sessionTier();
    bytewise.sendBytewise(TRANSACTION);
    await bytewise.settle();
    const expected = whole.replies();
    expect(codes(expected)).toEqual([
      "220",
      "250",
      "250 2.1.0",
      "250 2.1.5",
      "550 5.1.1",
      "250 2.1.5",
      "354",
      "250 2.0.0",
      "221 2.0.0",
    ]);
    expect(bytewise.replies()).toEqual(expected);
    // Proof that the input really was split: one byte per call means one write per reply (the whole chunk
    // writes its pipelined group at once).
    expect(bytewise.conn.writes.length).toBeGreaterThan(whole.conn.writes.length);
    expect(bytewise.messages.map((m) => m.text)).toEqual(whole.messages.map((m) => m.text));
    expect(bytewise.messages.map((m) => m.envelope)).toEqual(whole.messages.map((m) => m.envelope));
    expect(bytewise.closed).toBe(true);
  });

  test("STARTTLS drops the bytes pipelined after it, in the same chunk and before the handshake ends", async () => {
    const t = sessionTier({ tlsHandshake: "hold" });
    t.replies();
    t.send("EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n");
    expect(codes(t.replies())).toEqual(["250", "220 2.0.0"]);
    t.send("RCPT TO:<alice@example.test>\r\n"); // arrives while the handshake runs: dropped too (CVE-2011-0411)
    t.conn.finishTls();
    await t.settle();
    expect(t.replies()).toEqual([]);
    expect(t.conn.tls).toEqual(TIER_TLS);
    // RFC 3207 §4.2: the session starts over; EHLO now offers AUTH and no STARTTLS, MAIL needs a new EHLO.
    t.send("MAIL FROM:<s@remote.test>\r\nEHLO client.test\r\n");
    const [mail, ehlo] = t.replies();
    expect(codes([mail!])).toEqual(["503 5.5.1"]);
    expect(ehlo!.lines).toContain("AUTH PLAIN LOGIN");
    expect(ehlo!.lines).not.toContain("STARTTLS");
    expect(t.metrics.tlsResults).toEqual([true]);
  });

  test("AUTH PLAIN after STARTTLS goes through the real Authenticator and is recorded in the envelope", async () => {
    const t = sessionTier({ listener: "submission" });
    const plain = (u: string, p: string): string => Buffer.from(`\0${u}\0${p}`).toString("base64");
    t.send("EHLO c\r\nSTARTTLS\r\n");
    await t.settle();
    t.send(`EHLO c\r\nAUTH PLAIN ${plain("alice@example.test", "wrong")}\r\n`);
    await t.settle();
    t.send(`AUTH PLAIN ${plain("alice@example.test", "secret-alice")}\r\n`);
    await t.settle();
    t.send("MAIL FROM:<alice@example.test>\r\nRCPT TO:<someone@remote.test>\r\nDATA\r\nhi\r\n.\r\n");
    await t.settle();
    expect(codes(t.replies())).toEqual([
      "220",
      "250",
      "220 2.0.0",
      "250",
      "535 5.7.8",
      "235 2.7.0",
      "250 2.1.0",
      "250 2.1.5",
      "354",
      "250 2.0.0",
    ]);
    expect(t.messages[0]!.envelope.client.authUser).toBe("alice@example.test");
    expect(t.messages[0]!.envelope.client.tls).toBe("TLSv1.3 TLS_AES_256_GCM_SHA384");
    expect(t.metrics.authResults).toEqual([false, true]);
  });

  test("directory unavailable: RCPT 451 4.3.0 and AUTH 454 4.7.0 (never 5xx); the AUTH is no failure", async () => {
    const t = sessionTier({ listener: "submission", directoryDown: true });
    const plain = Buffer.from("\0alice@example.test\0secret-alice").toString("base64");
    t.send("EHLO c\r\nSTARTTLS\r\n");
    await t.settle();
    t.send(`EHLO c\r\nAUTH PLAIN ${plain}\r\n`);
    await t.settle();
    const mx = sessionTier({ directoryDown: true });
    mx.send("EHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\n");
    await mx.settle();
    expect(codes(t.replies())).toEqual(["220", "250", "220 2.0.0", "250", "454 4.7.0"]);
    expect(codes(mx.replies())).toEqual(["220", "250", "250 2.1.0", "451 4.3.0", "451 4.3.0"]);
  });

  test("sendChunked: the transaction cut at arbitrary sizes gives the replies and message of the whole", async () => {
    const whole = sessionTier();
    whole.send(TRANSACTION);
    await whole.settle();
    const cut = sessionTier();
    cut.sendChunked(TRANSACTION, [3, 20, 1, 1, 57, 2, 90]);
    await cut.settle();
    expect(cut.replies()).toEqual(whole.replies());
    expect(cut.messages.map((m) => m.text)).toEqual(whole.messages.map((m) => m.text));
  });

  test("the clock holds the brute-force delay of AUTH until it is advanced", async () => {
    const t = sessionTier({ listener: "submission", autoDelay: false, maxAuthFailures: 10 });
    const bad = Buffer.from("\0alice@example.test\0nope").toString("base64");
    t.send("EHLO c\r\nSTARTTLS\r\n");
    await t.settle();
    t.send("EHLO c\r\n");
    t.replies();
    // CONTRACT auth_ip_delay_after = 3: three failures are answered at once ...
    for (let i = 0; i < 3; i++) {
      t.send(`AUTH PLAIN ${bad}\r\n`);
      await t.settle();
    }
    expect(codes(t.replies())).toEqual(["535 5.7.8", "535 5.7.8", "535 5.7.8"]);
    // ... the fourth waits a second, and the commands pipelined behind it wait too.
    t.send(`AUTH PLAIN ${bad}\r\nNOOP\r\n`);
    await t.settle();
    expect(t.replies()).toEqual([]);
    expect(t.clock.delays).toEqual([1000]);
    t.clock.advance(999);
    await t.settle();
    expect(t.replies()).toEqual([]);
    t.clock.advance(1);
    await t.settle();
    expect(codes(t.replies())).toEqual(["535 5.7.8", "250 2.0.0"]);
  });
});
