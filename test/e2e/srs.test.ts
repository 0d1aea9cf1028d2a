/**
 * SRS forwarding through the real server (CONTRACT "Forwarding"): an alias of a local domain to a remote address
 * relays its copy (through relay.routes to a capture server on loopback) with MAIL FROM rewritten to SRS0 in the
 * SRS domain, while the local copy keeps Return-Path: <original>; a bounce to that SRS0 address is accepted from
 * anyone and relayed back to the original sender; a forged one gets 550 5.1.1; a permanent failure of the
 * forwarded copy is reported (DSN) to the original sender; senders of our own domains, and everything with [srs]
 * off, go out unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  findDelivered,
  readDelivered,
  sendMail,
  simpleMessage,
  SmtpClient,
  startServer,
  uniqueId,
  waitFor,
  type Srv,
} from "../helpers/index.ts";
import { CaptureServer, type CapturedMessage } from "../helpers/capture-server.ts";
import { srsForward } from "../../src/policy/srs.ts";

const SECRET = "e2e-srs-secret";
const SRS_OF_SENDER = /^<SRS0=[A-Za-z0-9_-]{4}=[A-Z2-7]{2}=elsewhere\.test=sender@example\.test>/;

/** Everything outside the SRS question held still: no DNS checks of elsewhere.test, routes to the capture servers. */
function config(capture: number, reject: number, srs: boolean): string {
  return `
[local.aliases]
"fwd@example.test" = ["user@remote.test", "alice@example.test"]
"gone@example.test" = ["nobody@reject.test"]
[relay.routes]
"remote.test" = "127.0.0.1:${capture}"
"elsewhere.test" = "127.0.0.1:${capture}"
"reject.test" = "127.0.0.1:${reject}"
[checks]
spf = "off"
dkim = "off"
arc = "off"
dmarc = "off"
${srs ? `[srs]\nsecret = "${SECRET}"\n` : ""}`;
}

/** A session of an MX client on loopback (not in relay.networks, not authenticated), after EHLO. */
async function mx<T>(srv: Srv, fn: (c: SmtpClient) => Promise<T>): Promise<T> {
  const c = await SmtpClient.connect(srv.ports.mx);
  try {
    await c.hello();
    return await fn(c);
  } finally {
    await c.cmd("QUIT").catch(() => undefined);
    c.destroy();
  }
}

/** One transaction from such a client. */
const send = (srv: Srv, from: string, to: string[], body: Buffer): ReturnType<typeof sendMail> => mx(srv, (c) => sendMail(c, from, to, body));

const arrived = (cap: CaptureServer, id: string): Promise<CapturedMessage> =>
  waitFor(() => cap.messages.find((m) => m.data.includes(id)), 15_000);

describe("SRS with [srs] secret set", () => {
  let cap: CaptureServer;
  let reject: CaptureServer;
  let srv: Srv;
  beforeAll(async () => {
    cap = await CaptureServer.start();
    reject = await CaptureServer.start({ script: { RCPT: ["550 5.1.1 <nobody@reject.test>: no such user"] } });
    srv = await startServer({ config: config(cap.port, reject.port, true) });
  }, 30_000);
  afterAll(async () => {
    await srv?.dispose();
    await cap?.close();
    await reject?.close();
  });

  test("forwarded copy: MAIL FROM SRS0; local copy keeps Return-Path; a bounce to the SRS0 address reaches the sender", async () => {
    const id = uniqueId();
    const r = await send(srv, "sender@elsewhere.test", ["fwd@example.test"], simpleMessage({ messageId: id, from: "sender@elsewhere.test" }));
    expect(r.final?.code, JSON.stringify(r)).toBe(250);
    const out = await arrived(cap, id);
    expect(out.mailFrom).toMatch(SRS_OF_SENDER);
    expect(out.rcptTo).toEqual(["<user@remote.test>"]);
    const local = await waitFor(() => findDelivered(srv.dataDir, "alice@example.test", id)[0]);
    expect(readDelivered(local).trace.returnPath).toBe("<sender@elsewhere.test>");

    // The remote end bounces: MAIL FROM:<> to the SRS0 address, in lower case as some MTAs write it.
    const srsAddress = /^<([^>]+)>/.exec(out.mailFrom)![1]!;
    const bounceId = uniqueId();
    const b = await send(srv, "", [srsAddress.toLowerCase()], simpleMessage({ messageId: bounceId, from: "mailer-daemon@remote.test" }));
    expect(b.rcpts.map((x) => x.code), JSON.stringify(b)).toEqual([250]);
    expect(b.final?.code).toBe(250);
    const back = await arrived(cap, bounceId);
    expect(back.mailFrom.split(" ")[0]).toBe("<>");
    expect(back.rcptTo).toEqual(["<sender@elsewhere.test>"]);
  });

  test("a forged SRS0 address (in any case) and an expired one (22 days old) get 550 5.1.1", async () => {
    await mx(srv, async (c) => {
      expect((await c.cmd("MAIL FROM:<>")).code).toBe(250);
      const forged = await c.cmd("RCPT TO:<SRS0=AAAA=2W=elsewhere.test=victim@example.test>");
      expect([forged.code, forged.enhanced]).toEqual([550, "5.1.1"]);
      const lower = await c.cmd("RCPT TO:<srs0=zzzz=zz=victim.test=x@EXAMPLE.test>");
      expect([lower.code, lower.enhanced]).toEqual([550, "5.1.1"]);
      const old = srsForward(SECRET, "example.test", "sender@elsewhere.test", Date.now() - 22 * 86_400_000)!;
      const expired = await c.cmd(`RCPT TO:<${old}>`);
      expect([expired.code, expired.enhanced, expired.lines[0]]).toEqual([550, "5.1.1", "5.1.1 Expired SRS address"]);
    });
  });

  test("a sender in local.domains is not rewritten", async () => {
    const id = uniqueId();
    const r = await send(srv, "bob@example.test", ["fwd@example.test"], simpleMessage({ messageId: id, from: "bob@example.test" }));
    expect(r.final?.code, JSON.stringify(r)).toBe(250);
    expect((await arrived(cap, id)).mailFrom.split(" ")[0]).toBe("<bob@example.test>");
  });

  test("a forwarded copy that fails permanently is reported to the original sender, not to the SRS address", async () => {
    const id = uniqueId();
    const r = await send(srv, "sender@elsewhere.test", ["gone@example.test"], simpleMessage({ messageId: id, from: "sender@elsewhere.test" }));
    expect(r.final?.code, JSON.stringify(r)).toBe(250);
    // The DSN quotes the message (headers at least): it carries the Message-ID.
    const dsn = await waitFor(() => cap.messages.find((m) => m.data.includes("multipart/report") && m.data.includes(id)), 15_000);
    expect(dsn.mailFrom.split(" ")[0]).toBe("<>");
    expect(dsn.rcptTo).toEqual(["<sender@elsewhere.test>"]);
    // The failed attempt itself went out with the SRS sender.
    expect(reject.lines.some((l) => SRS_OF_SENDER.test(l.replace(/^\d+ MAIL FROM:/, "")))).toBe(true);
  });
});

describe("SRS with [srs] off", () => {
  let cap: CaptureServer;
  let srv: Srv;
  beforeAll(async () => {
    cap = await CaptureServer.start();
    srv = await startServer({ config: config(cap.port, cap.port, false) });
  }, 30_000);
  afterAll(async () => {
    await srv?.dispose();
    await cap?.close();
  });

  test("the forwarded copy keeps the original sender; an SRS0 address is an unknown user", async () => {
    const id = uniqueId();
    const r = await send(srv, "sender@elsewhere.test", ["fwd@example.test"], simpleMessage({ messageId: id, from: "sender@elsewhere.test" }));
    expect(r.final?.code, JSON.stringify(r)).toBe(250);
    expect((await arrived(cap, id)).mailFrom.split(" ")[0]).toBe("<sender@elsewhere.test>");
    await mx(srv, async (c) => {
      await c.cmd("MAIL FROM:<>");
      const rc = await c.cmd("RCPT TO:<SRS0=AAAA=2W=elsewhere.test=victim@example.test>");
      expect([rc.code, rc.enhanced, rc.lines[0]]).toEqual([550, "5.1.1", "5.1.1 Mailbox unavailable"]);
    });
  });
});
