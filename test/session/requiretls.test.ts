/**
 * REQUIRETLS on the receiving side (RFC 8689 §4.1, CONTRACT "EHLO" and "Replies"): offered under TLS only; the
 * MAIL parameter over plaintext gets 530 5.7.10; under TLS it is accepted and kept in the envelope.
 */
import { describe, expect, test } from "vitest";
import { sessionTier, type TierReply } from "./harness.ts";

const codes = (rs: TierReply[]): string[] => rs.map((r) => (r.enhanced ? `${r.code} ${r.enhanced}` : `${r.code}`));

describe("REQUIRETLS (receiving)", () => {
  test("not offered before STARTTLS; MAIL FROM with REQUIRETLS in plaintext: 530 5.7.10", () => {
    const t = sessionTier();
    t.replies();
    t.send("EHLO client.test\r\n");
    expect(t.replies()[0]!.lines).not.toContain("REQUIRETLS");
    t.send("MAIL FROM:<sender@remote.test> REQUIRETLS\r\n");
    expect(codes(t.replies())).toEqual(["530 5.7.10"]);
    // The session goes on: the same transaction without the parameter is accepted.
    t.send("MAIL FROM:<sender@remote.test>\r\n");
    expect(codes(t.replies())).toEqual(["250 2.1.0"]);
  });

  test("under TLS: offered, accepted, and stored with the message; a value is a syntax error", async () => {
    const t = sessionTier({ listener: "submissions", auth: "optional" });
    t.replies();
    t.send("EHLO client.test\r\n");
    expect(t.replies()[0]!.lines).toContain("REQUIRETLS");
    t.send("MAIL FROM:<sender@remote.test> REQUIRETLS=YES\r\n");
    expect(codes(t.replies())[0]).toMatch(/^5\d\d 5\.5\.4$/);
    t.send("MAIL FROM:<sender@remote.test> REQUIRETLS\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    expect(codes(t.replies())).toEqual(["250 2.1.0", "250 2.1.5", "354"]);
    t.send("Subject: rt\r\n\r\nbody\r\n.\r\n");
    await t.settle();
    expect(codes(t.replies())).toEqual(["250 2.0.0"]);
    expect(t.messages[0]!.envelope.requireTls).toBe(true);
  });

  test("without the parameter the envelope has no requireTls", async () => {
    const t = sessionTier({ listener: "submissions", auth: "optional" });
    t.replies();
    t.send("EHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    t.send("Subject: x\r\n\r\nb\r\n.\r\n");
    await t.settle();
    expect(t.messages[0]!.envelope.requireTls).toBeUndefined();
  });
});
