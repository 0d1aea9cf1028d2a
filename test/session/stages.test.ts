/**
 * The inbound stage contract (src/mail/stage.ts) as the session honours it, in the in-process tier: hooks run in
 * order and the first reply wins, synchronous answers need no busy phase, asynchronous ones keep pipelined replies
 * in order, a failing stage costs a 451 (never a 5xx), observers see the body exactly as stored, and end-of-data
 * answers reject, prepend or pick a folder.
 */
import { describe, expect, test } from "vitest";
import type { EndVerdict, MaybePromise, Stage, StageSession, Verdict } from "../../src/mail/index.ts";
import { sessionTier, type TierReply } from "./harness.ts";

const codes = (rs: TierReply[]): string[] => rs.map((r) => (r.enhanced ? `${r.code} ${r.enhanced}` : `${r.code}`));
const stage = (name: string, hooks: StageSession | null): Stage => ({ name, open: () => hooks });
const later = <T>(v: T, ms = 1): Promise<T> => new Promise((r) => setTimeout(() => r(v), ms));

const MESSAGE = "Subject: stages\r\n\r\nbody line\r\n..dotted\r\n";

async function transaction(stages: Stage[], rcpts = ["alice@example.test"]) {
  const t = sessionTier({ stages });
  t.send(
    "EHLO client.test\r\nMAIL FROM:<sender@remote.test>\r\n" + rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join("") + "DATA\r\n",
  );
  await t.settle();
  await new Promise((r) => setTimeout(r, 5));
  await t.settle();
  return t;
}

describe("inbound stages in the session", () => {
  test("a synchronous RCPT refusal answers at once; an asynchronous one keeps pipelined replies in order", async () => {
    const refuseSync = stage("sync", { rcpt: (r): Verdict => (r.localPart === "bob" ? "550 5.7.1 no bob" : null) });
    const refuseAsync = stage("async", {
      rcpt: (r): MaybePromise<Verdict> => later(r.localPart === "postmaster" ? "450 4.7.1 later" : null, 3),
    });
    const t = sessionTier({ stages: [refuseSync, refuseAsync] });
    t.replies();
    t.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<bob@example.test>\r\n");
    // bob is refused by the synchronous stage before the asynchronous one is asked: no busy phase, all at once.
    expect(codes(t.replies())).toEqual(["250", "250 2.1.0", "550 5.7.1"]);
    t.send("RCPT TO:<postmaster@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    expect(t.replies()).toEqual([]); // waiting on the asynchronous stage
    await new Promise((r) => setTimeout(r, 20));
    await t.settle();
    expect(codes(t.replies())).toEqual(["450 4.7.1", "250 2.1.5", "354"]);
    t.send(MESSAGE + ".\r\n");
    await t.settle();
    expect(codes(t.replies())).toEqual(["250 2.0.0"]);
    expect(t.messages[0]!.envelope.recipients.map((r) => r.address)).toEqual(["alice@example.test"]);
  });

  test("MAIL and HELO refusals leave no sender and no HELO name behind", async () => {
    const t = sessionTier({
      stages: [
        stage("helo", { helo: (name) => (name === "bad.test" ? "550 5.7.1 bad HELO" : null) }),
        stage("mail", { mail: (s) => later(s.startsWith("spam") ? "550 5.7.1 bad sender" : null) }),
      ],
    });
    t.replies();
    t.send("HELO bad.test\r\nMAIL FROM:<a@remote.test>\r\n");
    expect(codes(t.replies())).toEqual(["550 5.7.1", "503 5.5.1"]);
    t.send("HELO good.test\r\nMAIL FROM:<spam@remote.test>\r\nRCPT TO:<alice@example.test>\r\n");
    await new Promise((r) => setTimeout(r, 10));
    await t.settle();
    expect(codes(t.replies())).toEqual(["250", "550 5.7.1", "503 5.5.1"]);
  });

  test("a stage that refuses the connection answers instead of the banner and closes it", async () => {
    const t = sessionTier({ stages: [stage("door", { connect: () => later("554 5.7.1 go away") })] });
    expect(t.replies()).toEqual([]); // the banner waits for the stage
    await new Promise((r) => setTimeout(r, 10));
    await t.settle();
    expect(codes(t.replies())).toEqual(["554 5.7.1"]);
    expect(t.closed).toBe(true);
  });

  test("a connect hook that lets the client in: banner, and bytes sent meanwhile are read afterwards", async () => {
    let earlyBytes = -1;
    const t = sessionTier({
      stages: [{ name: "peek", open: (view) => ({ connect: async () => ((earlyBytes = (await later(view)).bytesReceived), null) }) }],
    });
    t.send("EHLO early.test\r\n");
    await new Promise((r) => setTimeout(r, 10));
    await t.settle();
    expect(earlyBytes).toBe("EHLO early.test\r\n".length);
    expect(codes(t.replies())).toEqual(["220", "250"]);
  });

  test("a stage that throws or rejects costs 451 4.3.0, is logged, and the session goes on", async () => {
    const t = sessionTier({
      stages: [
        stage("throws", { rcpt: (r) => { if (r.localPart === "alice") throw new Error("boom"); return null; } }),
        stage("rejects", { rcpt: (r) => (r.localPart === "bob" ? Promise.reject(new Error("dns down")) : null) }),
      ],
    });
    t.replies();
    t.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nNOOP\r\n");
    await t.settle();
    expect(codes(t.replies())).toEqual(["250", "250 2.1.0", "451 4.3.0", "451 4.3.0", "250 2.0.0"]);
    expect(t.log.events.filter((e) => e.event === "stage.failed")).toHaveLength(2);
  });

  test("observers see the body exactly as stored (after the Received field), in order, for DATA and BDAT", async () => {
    const seen: string[] = [];
    const observe = stage("observe", {
      message: () => {
        let body = "";
        return {
          write: (b) => void (body += Buffer.from(b).toString("latin1")),
          end: (): EndVerdict => (seen.push(body), null),
        };
      },
    });
    const t = await transaction([observe]);
    t.sendBytewise(MESSAGE + ".\r\n");
    await t.settle();
    t.send(`MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT ${MESSAGE.length} LAST\r\n${MESSAGE}`);
    await t.settle();
    expect(t.messages).toHaveLength(2);
    const unstuffed = MESSAGE.replace("..dotted", ".dotted");
    expect(seen).toEqual([unstuffed, MESSAGE]);
    for (const [i, m] of t.messages.entries()) expect(m.text.endsWith(seen[i]!)).toBe(true);
  });

  test("end of data: the first rejection wins and nothing is stored; prepends join in stage order; a folder is kept", async () => {
    const accept = (v: EndVerdict, async = false): Stage =>
      stage("end", { message: () => ({ write: () => {}, end: () => (async ? later(v) : v) }) });
    const rejected = await transaction([accept({ kind: "accept", prepend: "X-A: 1\r\n" }), accept({ kind: "reject", reply: "550 5.7.1 DMARC says no" }, true)]);
    rejected.replies();
    rejected.send(MESSAGE + ".\r\n");
    await new Promise((r) => setTimeout(r, 10));
    await rejected.settle();
    expect(codes(rejected.replies())).toEqual(["550 5.7.1"]);
    expect(rejected.messages).toEqual([]);
    expect(rejected.spool.aborted).toHaveLength(1);

    const t = await transaction([
      accept({ kind: "accept", prepend: "Authentication-Results: x; none\r\n" }, true),
      accept(null),
      accept({ kind: "accept", prepend: "DKIM-Signature: v=1\r\n", folder: ".Junk" }),
    ]);
    t.replies();
    t.send(MESSAGE + ".\r\n");
    await new Promise((r) => setTimeout(r, 10));
    await t.settle();
    expect(codes(t.replies())).toEqual(["250 2.0.0"]);
    expect(t.messages[0]!.prepend).toBe("Authentication-Results: x; none\r\nDKIM-Signature: v=1\r\n");
    expect(t.messages[0]!.envelope.folder).toBe(".Junk");
  });

  test("the built-in hop counter refuses a loop after end of data (554 5.4.6) and the session stays usable", async () => {
    const t = sessionTier({ maxHops: 2 });
    t.replies();
    t.send("EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    t.send("Received: a\r\nreceived: b\r\nRECEIVED: c\r\n\r\nloop\r\n.\r\nMAIL FROM:<s@remote.test>\r\n");
    await t.settle();
    expect(codes(t.replies())).toEqual(["250", "250 2.1.0", "250 2.1.5", "354", "554 5.4.6", "250 2.1.0"]);
    expect(t.messages).toEqual([]);
  });

  test("the stages see the session's view: client, listener, HELO, authenticated user", async () => {
    const views: string[] = [];
    const t = sessionTier({
      listener: "submission",
      stages: [
        {
          name: "view",
          open: (v) => ({ mail: () => (views.push(`${v.clientAddress} ${v.listener} ${v.helo} ${v.tls} ${v.authUser}`), null) }),
        },
      ],
    });
    t.replies();
    t.send("EHLO c.test\r\nSTARTTLS\r\n");
    await t.settle();
    const plain = Buffer.from("\0alice@example.test\0secret-alice").toString("base64");
    t.send(`EHLO c2.test\r\nAUTH PLAIN ${plain}\r\n`);
    await t.settle();
    t.send("MAIL FROM:<alice@example.test>\r\n");
    await t.settle();
    expect(codes(t.replies()).slice(-2)).toEqual(["235 2.7.0", "250 2.1.0"]);
    expect(views).toEqual(["127.0.0.1 submission c2.test TLSv1.3 TLS_AES_256_GCM_SHA384 alice@example.test"]);
  });
});
