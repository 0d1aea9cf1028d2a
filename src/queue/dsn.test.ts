import { describe, expect, test } from "vitest";
import { localOutcome } from "../mail/index.ts";
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
      { address: "bob@far.test", orcpt: "rfc822;Bob@Far.test", action: "failed", outcome: { kind: "failed", code: 550, enhanced: "5.1.1", text: "<bob@far.test>: no such user", remoteMta: "mx1.far.test" }, lastAttempt: Date.UTC(2026, 0, 2, 3, 5, 0) },
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
        recipients: [{ address: "bob@far.test", action: "delayed", outcome: { kind: "deferred", code: 451, enhanced: "4.3.0", text: "try later", remoteMta: "mx1.far.test" }, lastAttempt: 0, willRetryUntil: Date.UTC(2026, 0, 7) }],
      }),
    );
    expect(delayed).toContain("Subject: Delayed Mail (still being retried)");
    expect(delayed).toContain("Action: delayed\r\nStatus: 4.3.0\r\n");
    expect(delayed).toContain("Will-Retry-Until: Wed, 7 Jan 2026 00:00:00 +0000\r\n");
    expect(delayed).not.toContain("Original-Recipient");
    const ok = text(input({ recipients: [{ address: "bob@far.test", action: "relayed", outcome: { kind: "delivered", code: 250, enhanced: "2.0.0", text: "ok", remoteMta: "mx1.far.test", relayed: true }, lastAttempt: 0 }] }));
    expect(ok).toContain("Subject: Successful Mail Delivery Report");
    expect(ok).toContain("Action: relayed\r\nStatus: 2.0.0\r\n");
  });

  test("statusOf: the enhanced code, else the reply class, else the action", () => {
    expect(statusOf({ code: 550, enhanced: "5.1.1" }, "failed")).toBe("5.1.1");
    expect(statusOf({ code: 556, enhanced: "5.1.10" }, "failed")).toBe("5.1.10");
    expect(statusOf({ code: 451, enhanced: "4.3.0" }, "delayed")).toBe("4.3.0");
    expect(statusOf({ code: 554, enhanced: "" }, "failed")).toBe("5.0.0");
    expect(statusOf({ code: 0, enhanced: "" }, "delivered")).toBe("2.0.0");
  });

  // RFC 3464 §2.3.5: Remote-MTA names the host that sent the reply; §2.3.6: "smtp" diagnostics are such replies.
  // Failures made up here (issue 15, defect 2) name no Remote-MTA and use our own X- diagnostic type.
  test("a failure of our own names no Remote-MTA and no smtp diagnostic", () => {
    const local = [
      localOutcome("deferred", 451, "4.4.1", "connect to mx.far.test[192.0.2.1]:25 failed: Connection refused"),
      localOutcome("failed", 554, "5.6.3", "mx.far.test does not support BINARYMIME and CHUNKING, which this message needs"),
      localOutcome("failed", 501, "5.5.4", "ENVID contains a control character"),
      localOutcome("failed", 556, "5.1.10", "far.test does not accept mail (null MX, RFC 7505)"),
      localOutcome("deferred", 451, "4.7.5", "TLS with mx.far.test failed: bad certificate"),
    ];
    for (const o of local) {
      const msg = text(input({ recipients: [{ address: "bob@far.test", action: "failed", outcome: { ...o, kind: "failed" }, lastAttempt: 0 }] }));
      const status = parts(msg).parts[1];
      expect(status).not.toContain("Remote-MTA");
      expect(status).not.toContain("Diagnostic-Code: smtp;");
      expect(status).toContain(`Diagnostic-Code: X-ringmta; ${o.code} ${o.enhanced} ${o.text}\r\n`);
      expect(status).toContain(`Status: ${o.enhanced}\r\n`);
      expect(parts(msg).parts[0]).not.toContain("said:");
    }
    // A local delivery report needs no diagnostic at all.
    const ok = text(input({ recipients: [{ address: "bob@example.test", action: "delivered", outcome: localOutcome("delivered", 250, "2.0.0", "delivered to maildir as x"), lastAttempt: 0 }] }));
    expect(ok).not.toContain("Diagnostic-Code");
    expect(ok).not.toContain("Remote-MTA");
  });
});

describe("issue 15: addresses and ORCPT in DSNs", () => {
  test("Final-Recipient, the text part and To: keep quoted local parts; a utf-8 ORCPT is shown as received", () => {
    const msg = text(
      input(
        {
          recipients: [
            { address: '"x@evil.test"@far.test', orcpt: "utf-8;a+2Bb", action: "failed", outcome: { ...localOutcome("failed", 550, "5.1.1", "no"), remoteMta: "mx1.far.test" }, lastAttempt: 0 },
            { address: "a b@far.test", action: "failed", outcome: localOutcome("failed", 550, "5.1.3", "bad"), lastAttempt: 0 },
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
