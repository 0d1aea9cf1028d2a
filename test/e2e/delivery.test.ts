/**
 * Real clients (Python smtplib, nodemailer, the raw client) deliver to the real server; the Maildir file must be the
 * trace fields followed by the message byte for byte (CONTRACT "Storage layout").
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { describe, expect, test } from "vitest";
import {
  HOSTNAME,
  SmtpClient,
  findDelivered,
  peerPath,
  peerTest,
  readDelivered,
  sendMail,
  trickyMessage,
  uniqueId,
  useServer,
  waitFor,
  type Delivered,
} from "../helpers/index.ts";

const srv = useServer();

/** The one delivered file of `address` that carries Message-ID `mid`. */
async function delivered(address: string, mid: string): Promise<Delivered> {
  const files = await waitFor(() => {
    const f = findDelivered(srv().dataDir, address, `Message-ID: <${mid}>`);
    return f.length > 0 ? f : null;
  }, 15_000);
  expect(files, `exactly one file for ${mid} in ${address}`).toHaveLength(1);
  return readDelivered(files[0]);
}

/** RFC 5321 §4.4 trace: Return-Path, Delivered-To, and a Received naming our host and the queue id. */
function expectTrace(d: Delivered, sender: string, rcpt: string, finalReply?: string): void {
  expect(d.trace.returnPath).toBe(`<${sender}>`);
  expect(d.trace.deliveredTo.toLowerCase()).toBe(rcpt.toLowerCase());
  expect(d.trace.received).toMatch(new RegExp(`\\bby ${HOSTNAME.replace(/\./g, "\\.")}\\b`));
  const id = /\bid ([^\s;]+)/.exec(d.trace.received);
  expect(id, `Received has an "id" clause: ${d.trace.received}`).not.toBeNull();
  // The queue id is what the 250 reply to end-of-data names (as Postfix's "queued as").
  if (finalReply !== undefined) expect(finalReply).toContain(id![1]);
}

describe("delivery", () => {
  peerTest("python3", "python smtplib: 8BITMIME body arrives byte-identical with trace fields", async () => {
    const mid = uniqueId("py");
    const msg = trickyMessage(mid);
    const file = join(srv().dir, `${mid}.eml`);
    writeFileSync(file, msg);
    const py = [
      "import smtplib, sys",
      "msg = open(sys.argv[1], 'rb').read()",
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[2]), local_hostname='py.client.test', timeout=30)",
      "s.ehlo()",
      "assert s.has_extn('8bitmime'), 'no 8BITMIME'",
      "code, resp = s.mail('sender@remote.test', ['BODY=8BITMIME'])",
      "assert code == 250, (code, resp)",
      "code, resp = s.rcpt('bob@example.test')",
      "assert code == 250, (code, resp)",
      "code, resp = s.data(msg)",
      "assert code == 250, (code, resp)",
      "print(resp.decode())",
      "s.quit()",
    ].join("\n");
    const out = await new Promise<string>((resolve, reject) =>
      execFile(peerPath("python3")!, ["-c", py, file, String(srv().ports.mx)], { timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`python3 failed: ${err.message}\n${stderr}`)) : resolve(stdout.trim()),
      ),
    );
    const d = await delivered("bob@example.test", mid);
    expect(d.body.equals(msg), "body byte-identical").toBe(true);
    expectTrace(d, "sender@remote.test", "bob@example.test", out);
  });

  test("nodemailer: a MailComposer-built message arrives byte-identical", async () => {
    const mid = uniqueId("nm");
    const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "windows" });
    const built = await composer.sendMail({
      from: "sender@remote.test",
      to: "alice@example.test",
      subject: "Grüße from nodemailer",
      messageId: `<${mid}>`,
      text: ".dot first\r\n..\r\nline two\r\n" + "x".repeat(2000) + "\r\nünïcødé\r\n",
      html: "<p>.dot</p>",
    });
    const raw = built.message as Buffer;
    expect(Buffer.isBuffer(raw)).toBe(true);
    const smtp = nodemailer.createTransport({
      host: "127.0.0.1",
      port: srv().ports.mx,
      secure: false,
      ignoreTLS: true,
      name: "nodemailer.client.test",
    });
    const info = await smtp.sendMail({ envelope: { from: "sender@remote.test", to: ["alice@example.test"] }, raw });
    smtp.close();
    expect(info.accepted).toEqual(["alice@example.test"]);
    const d = await delivered("alice@example.test", mid);
    expect(d.body.equals(raw), "body byte-identical").toBe(true);
    expectTrace(d, "sender@remote.test", "alice@example.test", info.response);
  });

  test("nodemailer: raw 8-bit message with leading dots and 998-octet lines arrives byte-identical", async () => {
    const mid = uniqueId("nmraw");
    const raw = trickyMessage(mid, "alice@example.test");
    const smtp = nodemailer.createTransport({ host: "127.0.0.1", port: srv().ports.mx, secure: false, ignoreTLS: true });
    const info = await smtp.sendMail({ envelope: { from: "sender@remote.test", to: ["alice@example.test"] }, raw });
    smtp.close();
    expect(info.accepted).toEqual(["alice@example.test"]);
    const d = await delivered("alice@example.test", mid);
    expect(d.body.equals(raw), "body byte-identical").toBe(true);
    expectTrace(d, "sender@remote.test", "alice@example.test", info.response);
  });

  test("raw client: null sender <> gives Return-Path: <>", async () => {
    const mid = uniqueId("null");
    const msg = trickyMessage(mid);
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    const r = await sendMail(c, "", ["bob@example.test"], msg, "BODY=8BITMIME");
    expect(r.final?.code).toBe(250);
    await c.cmd("QUIT");
    c.destroy();
    const d = await delivered("bob@example.test", mid);
    expect(d.body.equals(msg)).toBe(true);
    expectTrace(d, "", "bob@example.test", r.final!.lines.join(" "));
  });
});
