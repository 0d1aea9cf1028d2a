/**
 * RFC 8601 §5 in the session: with [checks] on (settings.ownAuthservId), Authentication-Results fields that carry
 * our authserv-id are removed as the message streams — from what the stages observe and what the spool keeps —
 * and nothing else changes. Also: observers of a message that will not end are told (abort), and what stages
 * answer at end of data reaches the smtp.accepted / smtp.rejected log line.
 */
import { describe, expect, test } from "vitest";
import type { EndVerdict, MessageObserver, Stage } from "../../src/mail/index.ts";
import { HOSTNAME } from "../helpers/server.ts";
import { latin1, sessionTier } from "./harness.ts";

const FORGED = `Authentication-Results: ${HOSTNAME.toUpperCase()}; dmarc=pass header.from=bank.test\r\n`;
const FOLDED = `Authentication-Results: (looks real)\r\n\t${HOSTNAME};\r\n dkim=pass header.d=bank.test\r\n`;
const OTHER = "Authentication-Results: mx.elsewhere.test; spf=fail\r\n";
const KEPT = "From: <a@bank.test>\r\nSubject: forged results\r\n";
const BODY = `\r\n${FORGED}the body keeps every line\r\n`;

/** A stage that records what its observer saw and answers `verdict` at the end. */
function watcher(verdict: EndVerdict, seen: { text: string; aborted: number }): Stage {
  return {
    name: "watch",
    open: () => ({
      message: (): MessageObserver => ({
        write: (b) => void (seen.text += latin1(b)),
        end: () => verdict,
        abort: () => void seen.aborted++,
      }),
    }),
  };
}

async function send(ownAuthservId: string, message: string, stages: Stage[] = [], chunks?: number[]) {
  const t = sessionTier({ ownAuthservId, stages });
  t.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
  await t.settle();
  const data = message.replace(/\r\n\./g, "\r\n..") + ".\r\n";
  if (chunks) t.sendChunked(data, chunks);
  else t.send(data);
  await t.settle();
  return t;
}

describe("forged Authentication-Results (RFC 8601 §5)", () => {
  test("fields with our authserv-id go, in any case and folded; others' fields, headers and body stay", async () => {
    const seen = { text: "", aborted: 0 };
    const t = await send(HOSTNAME, FORGED + KEPT + FOLDED + OTHER + BODY, [watcher(null, seen)], [7, 13, 1, 40, 3]);
    expect(t.messages).toHaveLength(1);
    const stored = t.messages[0]!.text;
    // Our Received field (its last line is the date), then exactly what is kept.
    expect(stored.slice(stored.indexOf("+0000\r\n") + 7)).toBe(KEPT + OTHER + BODY);
    expect(seen.text).toBe(KEPT + OTHER + BODY);
  });
  test("without [checks] (no authserv-id) nothing is removed", async () => {
    const t = await send("", FORGED + KEPT + BODY);
    expect(t.messages[0]!.text.endsWith(FORGED + KEPT + BODY)).toBe(true);
  });
});

describe("stage observers and the log", () => {
  test("an observer of a message that is reset or too big is aborted, never ended", async () => {
    const seen = { text: "", aborted: 0 };
    const t = sessionTier({ stages: [watcher(null, seen)] });
    t.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 5\r\nabcde");
    await t.settle();
    t.send("RSET\r\n");
    await t.settle();
    expect(seen.aborted).toBe(1);
    t.hangUp();
    expect(seen.aborted).toBe(1);
  });
  test("log fields of an accepting and of a rejecting stage reach smtp.accepted and smtp.rejected", async () => {
    const seen = { text: "", aborted: 0 };
    const ok = await send("", KEPT + BODY, [watcher({ kind: "accept", log: { checks: { spf: "pass" } } }, seen)]);
    expect(ok.log.events.find((e) => e.event === "smtp.accepted")?.fields).toMatchObject({ checks: { spf: "pass" } });
    const no = await send("", KEPT + BODY, [watcher({ kind: "reject", reply: "550 5.7.1 no", log: { checks: { dmarc: "fail" } } }, seen)]);
    expect(no.log.events.find((e) => e.event === "smtp.rejected")?.fields).toMatchObject({ checks: { dmarc: "fail" }, reply: "550 5.7.1 no" });
  });
});
