import { describe, expect, test } from "vitest";
import type { Envelope } from "../mail/index.ts";
import { dsnChunks, statusOf } from "./index.ts";
import type { DsnInput } from "./index.ts";

const ORIGINAL = "Received: by mx.test; x\r\nSubject: original\r\nMessage-ID: <o@x>\r\n\r\nsecret body line\r\n";

function input(over: Partial<DsnInput> = {}, env: Partial<Envelope> = {}): DsnInput {
  return {
    hostname: "mx.test",
    dsnId: "DSNID",
    envelope: {
      sender: "alice@example.test",
      recipients: [],
      body: "8BITMIME",
      smtputf8: false,
      client: { address: "127.0.0.1", helo: "c", listener: "mx" },
      arrival: Date.UTC(2026, 0, 2, 3, 4, 5),
      ...env,
    },
    recipients: [
      { address: "bob@far.test", orcpt: "rfc822;Bob@Far.test", action: "failed", reply: "550 5.1.1 <bob@far.test>: no such user", remoteMta: "mx1.far.test", lastAttempt: Date.UTC(2026, 0, 2, 3, 5, 0) },
    ],
    chunks: () => [new TextEncoder().encode(ORIGINAL)],
    now: Date.UTC(2026, 0, 2, 3, 5, 0),
    ...over,
  };
}

const text = (i: DsnInput): string => Buffer.concat([...dsnChunks(i)].map((c) => Buffer.from(c))).toString("utf8");

/** The parts of a multipart body by its boundary. */
function parts(msg: string): { head: string; parts: string[] } {
  const b = /boundary="([^"]+)"/.exec(msg)![1];
  const [head, ...rest] = msg.split(`\r\n--${b}`);
  expect(rest[rest.length - 1]).toBe("--\r\n");
  return { head, parts: rest.slice(0, -1).map((p) => p.replace(/^\r\n/, "")) };
}

describe("DSN (RFC 3464)", () => {
  test("a bounce: multipart/report with text, delivery-status and the returned headers", () => {
    const msg = text(input());
    expect(msg).not.toMatch(/[^\r]\n/); // CRLF only
    const { head, parts: p } = parts(msg);
    expect(head).toMatch(/^Received: by mx\.test \(ringmta\) id DSNID;\r\n\t.+\r\n/);
    expect(head).toContain("From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\n");
    expect(head).toContain("To: <alice@example.test>\r\n");
    expect(head).toContain("Subject: Undelivered Mail Returned to Sender\r\n");
    expect(head).toContain("Auto-Submitted: auto-replied\r\n");
    expect(head).toMatch(/Content-Type: multipart\/report; report-type=delivery-status;\r\n\tboundary="/);
    expect(p.length).toBe(3);
    expect(p[0]).toMatch(/^Content-Description: Notification\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
    expect(p[0]).toContain("<bob@far.test>: host mx1.far.test said: 550 5.1.1 <bob@far.test>: no such user");
    expect(p[1]).toContain("Content-Type: message/delivery-status\r\n\r\n");
    expect(p[1]).toContain(
      "Reporting-MTA: dns; mx.test\r\nArrival-Date: Fri, 2 Jan 2026 03:04:05 +0000\r\n\r\n" +
        "Original-Recipient: rfc822; Bob@Far.test\r\nFinal-Recipient: rfc822; bob@far.test\r\nAction: failed\r\n" +
        "Status: 5.1.1\r\nRemote-MTA: dns; mx1.far.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@far.test>: no such user\r\n" +
        "Last-Attempt-Date: Fri, 2 Jan 2026 03:05:00 +0000\r\n",
    );
    // Default (no RET): headers only, never the body.
    expect(p[2]).toBe("Content-Description: Returned headers\r\nContent-Type: text/rfc822-headers\r\n\r\nReceived: by mx.test; x\r\nSubject: original\r\nMessage-ID: <o@x>\r\n\r\n");
    expect(msg).not.toContain("secret body line");
  });

  test("RET=FULL returns the whole message as message/rfc822; ENVID becomes Original-Envelope-Id", () => {
    const msg = text(input({}, { ret: "FULL", envid: "QQ314159" }));
    const { parts: p } = parts(msg);
    expect(p[1]).toContain("Reporting-MTA: dns; mx.test\r\nOriginal-Envelope-Id: QQ314159\r\n");
    expect(p[2]).toBe(`Content-Description: Returned message\r\nContent-Type: message/rfc822\r\n\r\n${ORIGINAL}`);
  });

  test("delay warning and success reports", () => {
    const delayed = text(
      input({
        recipients: [{ address: "bob@far.test", action: "delayed", reply: "451 4.3.0 try later", remoteMta: "mx1.far.test", lastAttempt: 0, willRetryUntil: Date.UTC(2026, 0, 7) }],
      }),
    );
    expect(delayed).toContain("Subject: Delayed Mail (still being retried)");
    expect(delayed).toContain("Action: delayed\r\nStatus: 4.3.0\r\n");
    expect(delayed).toContain("Will-Retry-Until: Wed, 7 Jan 2026 00:00:00 +0000\r\n");
    expect(delayed).not.toContain("Original-Recipient");
    const ok = text(input({ recipients: [{ address: "bob@far.test", action: "relayed", reply: "250 2.0.0 ok", remoteMta: "mx1.far.test", lastAttempt: 0 }] }));
    expect(ok).toContain("Subject: Successful Mail Delivery Report");
    expect(ok).toContain("Action: relayed\r\nStatus: 2.0.0\r\n");
  });

  test("statusOf: the enhanced code, else the reply class, else the action", () => {
    expect(statusOf("550 5.1.1 x", "failed")).toBe("5.1.1");
    expect(statusOf("556 5.1.10 null MX", "failed")).toBe("5.1.10");
    expect(statusOf("4.3.0 maildir", "delayed")).toBe("4.3.0");
    expect(statusOf("554 go away", "failed")).toBe("5.0.0");
    expect(statusOf("weird", "delivered")).toBe("2.0.0");
  });
});

describe("issue 15: addresses and ORCPT in DSNs", () => {
  test("Final-Recipient, the text part and To: keep quoted local parts; a utf-8 ORCPT is shown as received", () => {
    const msg = text(
      input(
        {
          recipients: [
            { address: '"x@evil.test"@far.test', orcpt: "utf-8;a+2Bb", action: "failed", reply: "550 5.1.1 no", remoteMta: "mx1.far.test", lastAttempt: 0 },
            { address: "a b@far.test", action: "failed", reply: "5.1.3 bad", lastAttempt: 0 },
          ],
        },
        { sender: '"s p"@example.test' },
      ),
    );
    expect(msg).toContain('To: <"s p"@example.test>\r\n');
    expect(msg).toContain('<"x@evil.test"@far.test>: host mx1.far.test said: 550 5.1.1 no');
    expect(msg).toContain('Original-Recipient: utf-8; a+2Bb\r\nFinal-Recipient: rfc822; "x@evil.test"@far.test\r\n');
    expect(msg).toContain('Final-Recipient: rfc822; "a b"@far.test\r\n');
  });
});
