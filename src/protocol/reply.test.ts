import { describe, expect, test } from "vitest";
import { authChallenge, bdatOk, greeting, multiline, okQueued, Reply, replyBytes, replyLine } from "./reply.ts";

describe("Reply table", () => {
  test("codes and enhanced codes of the CONTRACT Replies table", () => {
    const want: Record<string, string> = {
      unknownUser: "550 5.1.1",
      relayDenied: "554 5.7.1",
      tooManyRecipients: "452 4.5.3",
      tooBig: "552 5.3.4",
      badSequence: "503 5.5.1",
      unknownCommand: "500 5.5.2",
      lineTooLong: "500 5.5.2",
      authRequired: "530 5.7.0",
      encryptionRequired: "538 5.7.11",
      authFailed: "535 5.7.8",
      authUnknownMech: "504 5.5.4",
      authBadBase64: "501 5.5.2",
      badSender: "501 5.1.7",
      badRecipient: "501 5.1.3",
      tooManyAuthFailures: "421 4.7.0",
      senderMismatch: "553 5.7.1",
      loop: "554 5.4.6",
      bareNewline: "521 5.5.2",
      idle: "421 4.4.2",
      tooManyConns: "421 4.7.0",
      shutdown: "421 4.3.2",
      authBlocked: "454 4.7.0",
      badParam: "555 5.5.4",
      syntax: "501 5.5.4",
      alreadyAuthenticated: "503 5.5.1",
      tlsActive: "503 5.5.1",
      authNeedsTls: "530 5.7.0",
    };
    for (const [name, code] of Object.entries(want)) {
      expect(Reply[name as keyof typeof Reply].startsWith(code + " "), name).toBe(true);
    }
  });
  test("every reply is one line: 3-digit code, enhanced code whose class matches, no CR/LF", () => {
    for (const [name, r] of Object.entries(Reply)) {
      expect(r, name).toMatch(/^[2-5][0-9][0-9] /);
      expect(r, name).not.toMatch(/[\r\n]/);
      const enh = r.split(" ")[1];
      if (!r.startsWith("354")) {
        expect(enh, name).toMatch(/^[245]\.[0-9]{1,3}\.[0-9]{1,3}$/);
        expect(enh[0], name).toBe(r[0]);
      }
    }
  });
  test("helpers", () => {
    expect(okQueued("ABC123")).toBe("250 2.0.0 Ok: queued as ABC123");
    expect(greeting("mx.test")).toBe("220 mx.test ESMTP ringmta");
    expect(bdatOk(42)).toBe("250 2.0.0 42 octets received");
    expect(authChallenge("")).toBe("334 ");
    expect(multiline("250", ["a", "b", "c"])).toBe("250-a\r\n250-b\r\n250 c");
    expect(multiline("250", ["only"])).toBe("250 only");
  });
  test("replyLine appends CRLF; ASCII byte for byte, non-ASCII as UTF-8", () => {
    expect(Array.from(replyLine("250 OK"))).toEqual([50, 53, 48, 32, 79, 75, 13, 10]);
    expect(new TextDecoder().decode(replyLine("220 bücher.test"))).toBe("220 bücher.test\r\n");
  });
});

describe("replyBytes", () => {
  test("every reply of the table: the bytes of replyLine, encoded once and shared", () => {
    for (const r of Object.values(Reply)) {
      const b = replyBytes(r);
      expect(b).toEqual(replyLine(r));
      expect(replyBytes(r)).toBe(b);
    }
  });
  test("other text (queue ids, EHLO lines, UTF-8 host names) is encoded on each call", () => {
    const q = okQueued("ABC123");
    expect(new TextDecoder().decode(replyBytes(q))).toBe("250 2.0.0 Ok: queued as ABC123\r\n");
    expect(replyBytes(q)).not.toBe(replyBytes(q));
    expect(new TextDecoder().decode(replyBytes("250 mx.例え.jp"))).toBe("250 mx.例え.jp\r\n");
  });
});
