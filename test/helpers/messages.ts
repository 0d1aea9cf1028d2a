/**
 * Test messages as exact bytes (CRLF line ends, RFC 5322), so a test can compare what lands in the Maildir.
 */
import { randomBytes } from "node:crypto";

export function uniqueId(tag = "m"): string {
  return `${tag}.${Date.now()}.${randomBytes(6).toString("hex")}@client.test`;
}

export interface MessageOpts {
  from?: string;
  to?: string;
  subject?: string;
  messageId?: string;
  /** Body lines (CRLF is appended to each). */
  lines?: string[];
}

export function simpleMessage(o: MessageOpts = {}): Buffer {
  const head = [
    `From: <${o.from ?? "sender@remote.test"}>`,
    `To: <${o.to ?? "bob@example.test"}>`,
    `Subject: ${o.subject ?? "test"}`,
    `Message-ID: <${o.messageId ?? uniqueId()}>`,
    "Date: Thu, 01 Jan 2026 00:00:00 +0000",
  ];
  return Buffer.from([...head, "", ...(o.lines ?? ["hello"])].join("\r\n") + "\r\n", "utf8");
}

/**
 * A body that exercises transparency and 8-bit transport: lines that start with one or two dots, a lone ".",
 * ". " and ".\t", 8-bit bytes that are not UTF-8 (0xFF 0xFE), UTF-8 text, and a line of exactly 998 octets
 * (RFC 5322 §2.1.1 maximum without CRLF).
 */
export function trickyMessage(messageId: string, to = "bob@example.test"): Buffer {
  const head = Buffer.from(
    [
      "From: <sender@remote.test>",
      `To: <${to}>`,
      "Subject: transparency",
      `Message-ID: <${messageId}>`,
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: 8bit",
      "",
      ".leading dot",
      "..two leading dots",
      ".",
      ". ",
      ".\t",
      "café – ünïcødé",
      "",
    ].join("\r\n"),
    "utf8",
  );
  const eightBit = Buffer.from([0x62, 0x69, 0x6e, 0x3a, 0xff, 0xfe, 0x80, 0x0d, 0x0a]); // "bin:" + non-UTF-8
  const long = Buffer.from("L".repeat(997) + ".\r\n", "latin1");
  const longDot = Buffer.from("." + "D".repeat(997) + "\r\n", "latin1");
  const tail = Buffer.from("last line\r\n", "latin1");
  return Buffer.concat([head, eightBit, long, longDot, tail]);
}
