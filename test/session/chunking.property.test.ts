/**
 * Property: however the transport cuts a pipelined stream into chunks, and whether or not the asynchronous steps
 * (spool commit, AUTH check, STARTTLS) finish between two chunks, the session writes the same replies and commits
 * the same bytes with the same envelopes. The reference is the whole stream in one chunk.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { parseReplies, sessionTier, type Tier } from "./harness.ts";

const plain = Buffer.from("\0alice@example.test\0secret-alice").toString("base64");

/** Two DATA transactions (dot-stuffed lines, an unknown recipient), one BDAT transaction, RSET, QUIT. */
const PLAINTEXT = new TextEncoder().encode(
  "EHLO client.test\r\n" +
    "MAIL FROM:<sender@remote.test> BODY=8BITMIME\r\n" +
    "RCPT TO:<alice@example.test>\r\n" +
    "RCPT TO:<nobody@example.test>\r\n" +
    "RCPT TO:<team@example.test>\r\n" +
    "DATA\r\n" +
    "Subject: one\r\n\r\n..dot\r\n...\r\n\r\nend. \r\n.\r\n" +
    "MAIL FROM:<>\r\nRCPT TO:<postmaster@example.test>\r\nDATA\r\nSubject: two\r\n\r\nx\r\n.\r\n" +
    "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT 15\r\nSubject: bdat\r\nBDAT 8 LAST\r\n\r\nbody\r\n" +
    "RSET\r\nNOOP\r\nQUIT\r\n",
);

/** The submission side: STARTTLS, then AUTH PLAIN and a relayed message, pipelined after the handshake. */
const SUBMISSION = {
  beforeTls: new TextEncoder().encode("EHLO client.test\r\nSTARTTLS\r\n"),
  afterTls: new TextEncoder().encode(
    `EHLO client.test\r\nAUTH PLAIN ${plain}\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<someone@remote.test>\r\n` +
      "DATA\r\nSubject: out\r\n\r\nhello\r\n.\r\nQUIT\r\n",
  ),
};

interface Outcome {
  output: string;
  messages: Array<{ text: string; envelope: unknown }>;
  closed: boolean;
}

function outcome(t: Tier): Outcome {
  return { output: t.output, messages: t.messages.map((m) => ({ text: m.text, envelope: m.envelope })), closed: t.closed };
}

/** Cuts `bytes` at the given offsets; settles after the chunks whose flag is set. */
async function feed(t: Tier, bytes: Uint8Array, cuts: number[], settleAfter: boolean[]): Promise<void> {
  const points = [...new Set(cuts.map((c) => c % bytes.length).filter((c) => c > 0))].sort((a, b) => a - b);
  let from = 0;
  for (const [i, to] of [...points, bytes.length].entries()) {
    t.send(bytes.subarray(from, to));
    from = to;
    if (settleAfter[i % Math.max(settleAfter.length, 1)]) await t.settle();
  }
  await t.settle();
}

const cutsArb = fc.array(fc.nat(), { maxLength: 40 });
const settleArb = fc.array(fc.boolean(), { maxLength: 8 });

describe("chunking property", () => {
  test("a pipelined plaintext stream: any chunking gives the replies and messages of the whole stream", async () => {
    const ref = sessionTier();
    await feed(ref, PLAINTEXT, [], []);
    const expected = outcome(ref);
    // The reference itself is what the stream means: every reply as intended, three messages, closed by QUIT.
    expect(parseReplies(expected.output).replies.map((r) => r.code)).toEqual([
      220, 250, 250, 250, 550, 250, 354, 250, 250, 250, 354, 250, 250, 250, 250, 250, 250, 250, 221,
    ]);
    expect(expected.messages).toHaveLength(3);
    expect(expected.closed).toBe(true);
    await fc.assert(
      fc.asyncProperty(cutsArb, settleArb, async (cuts, settles) => {
        const t = sessionTier();
        await feed(t, PLAINTEXT, cuts, settles);
        expect(outcome(t)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  test("STARTTLS, AUTH and a relayed message: any chunking after the handshake gives the same result", async () => {
    const run = async (cuts: number[], settles: boolean[]): Promise<Outcome> => {
      const t = sessionTier({ listener: "submission" });
      t.send(SUBMISSION.beforeTls);
      await t.settle();
      await feed(t, SUBMISSION.afterTls, cuts, settles);
      return outcome(t);
    };
    const expected = await run([], []);
    expect(expected.messages).toHaveLength(1);
    expect(expected.output).toContain("235 2.7.0");
    await fc.assert(
      fc.asyncProperty(cutsArb, settleArb, async (cuts, settles) => {
        expect(await run(cuts, settles)).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });
});
