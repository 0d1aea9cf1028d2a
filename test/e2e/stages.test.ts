/**
 * Inbound stages added from outside (ARCHITECTURE "inbound/"; issue 10 acceptance): the real server, started
 * in-process with two stages of the test's own — one refuses RCPT for a name, asynchronously, one prepends
 * `X-Test: 1` at end of data — delivers through the real spool and delivery workers into Maildir. Session code
 * knows neither stage: they come in through startServer's extraStages, as the mail/ contract describes.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startServer, type RunningServer } from "../../src/app/index.ts";
import { validateConfig } from "../../src/config/index.ts";
import type { EndVerdict, Stage } from "../../src/mail/index.ts";
import { createLogger } from "../../src/observe/index.ts";
import { createBunTransport } from "../../src/transport/bun/index.ts";
import { freePorts, maildirFiles, SmtpClient, waitFor, type Reply } from "../helpers/index.ts";

const refuseBlocked: Stage = {
  name: "refuse-blocked",
  open: () => ({
    // Asynchronous on purpose: the session must wait in its busy phase and keep pipelined replies in order.
    rcpt: async (r) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return r.localPart.toLowerCase() === "blocked" ? "550 5.7.1 Refused by the test stage" : null;
    },
  }),
};

let bodyBytesSeen = 0;
const prependHeader: Stage = {
  name: "x-test",
  open: () => ({
    message: () => ({
      write: (bytes) => {
        bodyBytesSeen += bytes.length;
      },
      end: (): EndVerdict => ({ kind: "accept", prepend: "X-Test: 1\r\n" }),
    }),
  }),
};

let dir = "";
let server: RunningServer;
let port = 0;
const logLines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ringmta-stages-"));
  [port] = await freePorts(1);
  const r = validateConfig(
    {
      hostname: "mx.stages.test",
      data_dir: "data",
      local: { domains: ["example.test"], catch_all: true },
      listeners: [{ name: "mx", host: "127.0.0.1", port, tls: "none", auth: "off" }],
      metrics: { listen: "" },
      delivery: { workers: 1 },
      checks: { spf: "off", dkim: "off", arc: "off", dmarc: "off" },
    },
    dir,
    null,
  );
  if (!r.ok) throw new Error(r.errors.join("; "));
  server = await startServer(r.config, {
    transport: createBunTransport(),
    log: createLogger("json", { write: (line: string) => void logLines.push(line) }),
    extraStages: [refuseBlocked, prependHeader],
  });
});

afterAll(async () => {
  await server?.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

async function replies(c: SmtpClient, n: number): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) out.push(await c.readReply());
  return out;
}

describe("stages added by a test, through the real server", () => {
  test("a stage refuses RCPT for one name (pipelined replies stay in order); another prepends X-Test: 1 to what is delivered", async () => {
    const c = await SmtpClient.connect(port);
    expect((await c.readReply()).code).toBe(220);
    await c.send("EHLO client.test\r\n");
    expect((await c.readReply()).code).toBe(250);
    // One pipelined group (RFC 2920): the stage's asynchronous refusal must not reorder the replies.
    await c.send(
      "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<blocked@example.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<Blocked@example.test>\r\nDATA\r\n",
    );
    const [mail, blocked, alice, blocked2, data] = await replies(c, 5);
    expect(mail.code).toBe(250);
    expect([blocked.code, blocked.enhanced]).toEqual([550, "5.7.1"]);
    expect(blocked.lines[0]).toContain("Refused by the test stage");
    expect(alice.code).toBe(250);
    expect(blocked2.code).toBe(550);
    expect(data.code).toBe(354);
    const body = "From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: stages\r\n\r\nHello stages.\r\n";
    await c.send(body + ".\r\n");
    expect((await c.readReply()).code).toBe(250);
    await c.send("QUIT\r\n");
    await c.readReply();

    const dataDir = join(dir, "data");
    await waitFor(() => maildirFiles(dataDir, "example.test", "alice").length === 1, 10_000);
    expect(maildirFiles(dataDir, "example.test", "blocked")).toEqual([]);
    const raw = readFileSync(maildirFiles(dataDir, "example.test", "alice")[0]!, "utf8");
    const lines = raw.split("\r\n");
    // Trace fields of the courier, then what the stage prepended, then our Received field, then the message.
    expect(lines[0]).toBe("Return-Path: <sender@remote.test>");
    expect(lines[1]).toBe("Delivered-To: alice@example.test");
    expect(lines[2]).toBe("X-Test: 1");
    expect(lines[3]).toMatch(/^Received: from client\.test/);
    expect(raw.endsWith(body)).toBe(true);
    expect(bodyBytesSeen).toBe(Buffer.byteLength(body));
  });
});
