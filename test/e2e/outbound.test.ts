/**
 * Issue 4, outbound: the real server relays to real peers on loopback — a capture SMTP server through
 * relay.routes, MX hosts served by dnsmasq, a second ringmta as STARTTLS+AUTH smart host — retries 4xx on the
 * configured schedule, and bounces 5xx / expired mail with an RFC 3464 DSN into the (local) sender's Maildir.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  BUN,
  MAIN,
  maildirFiles,
  peerTest,
  havePeer,
  sendMail,
  simpleMessage,
  SmtpClient,
  startServer,
  trickyMessage,
  uniqueId,
  USERS,
  waitFor,
  type Srv,
} from "../helpers/index.ts";
import { CaptureServer } from "../helpers/capture-server.ts";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import { startPostfix, type Postfix } from "../helpers/postfix.ts";

const SENDER = "alice@example.test";

/** Relay one message into ringmta from loopback (relay.networks) and expect the 250. */
async function inject(srv: Srv, to: string[], body: Buffer, params = ""): Promise<void> {
  const c = await SmtpClient.connect(srv.ports.mx);
  await c.hello();
  const r = await sendMail(c, SENDER, to, body, params);
  expect(r.final?.code, JSON.stringify(r)).toBe(250);
  await c.cmd("QUIT").catch(() => undefined);
  c.destroy();
}

interface QueueEntry {
  id: string;
  recipients: Array<{ address: string; state: string; attempts: number; next_attempt: string | null; last_reply: string }>;
}

function queueList(srv: Srv): QueueEntry[] {
  const r = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv.configPath], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as QueueEntry[];
}

/** The DSNs in the sender's Maildir whose text contains `needle`. */
function dsnsFor(srv: Srv, needle: string): string[] {
  return dsnList(srv, needle);
}

/** For waitFor: the DSNs, or null while there are none. */
function dsnsNow(srv: Srv, needle: string): string[] | null {
  const l = dsnList(srv, needle);
  return l.length > 0 ? l : null;
}

function dsnList(srv: Srv, needle: string): string[] {
  return maildirFiles(srv.dataDir, "example.test", "alice")
    .map((f) => readFileSync(f, "utf8"))
    .filter((t) => t.includes("multipart/report") && t.includes(needle));
}

describe("relay through relay.routes to capture servers", () => {
  let srv: Srv;
  let far: CaptureServer;
  let grey: CaptureServer;
  let reject: CaptureServer;
  let down: CaptureServer;
  beforeAll(async () => {
    far = await CaptureServer.start();
    grey = await CaptureServer.start({ script: { RCPT: ["451 4.7.1 greylisted, try again", "451 4.7.1 greylisted, try again"] } });
    reject = await CaptureServer.start({ script: { RCPT: ["550 5.1.1 <nobody@reject.test>: Recipient address rejected: no such user"] } });
    down = await CaptureServer.start({ script: { RCPT: Array.from({ length: 100 }, () => "451 4.3.2 system overloaded") } });
    srv = await startServer({
      config: `
[relay]
networks = ["127.0.0.0/8"]
[relay.routes]
"far.test" = "127.0.0.1:${far.port}"
"grey.test" = "127.0.0.1:${grey.port}"
"reject.test" = "127.0.0.1:${reject.port}"
"down.test" = "127.0.0.1:${down.port}"
[queue]
retry_intervals = ["1s"]
max_age = "4s"
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    for (const c of [far, grey, reject, down]) await c?.close();
  });

  test("the message arrives intact: body byte-identical, our Received header on top", async () => {
    const body = trickyMessage(uniqueId("far"));
    await inject(srv, ["bob@far.test", "carol@far.test"], body);
    await waitFor(() => far.messages.length === 1, 15_000);
    const m = far.messages[0];
    expect(m.rcptTo).toEqual(["<bob@far.test>", "<carol@far.test>"]); // one transaction
    expect(m.mailFrom.startsWith(`<${SENDER}>`)).toBe(true);
    const got = m.data;
    expect(got.subarray(got.length - body.length).equals(body)).toBe(true);
    const added = got.subarray(0, got.length - body.length).toString("utf8");
    expect(added).toMatch(/^Received: from [\s\S]*\sby mx\.test\.ringmta \(ringmta\) with E?SMTP\S* id [0-9A-Z]+[\s\S]*\r\n$/);
    expect(added.match(/^Received:/gm)?.length).toBe(1);
    await waitFor(() => queueList(srv).length === 0, 10_000);
  });

  test("451 twice, then accepted: delivered on the third attempt, the attempts recorded meanwhile", async () => {
    const mid = uniqueId("grey");
    await inject(srv, ["dave@grey.test"], simpleMessage({ messageId: mid }));
    const seen = await waitFor(() => {
      const e = queueList(srv).find((q) => q.recipients[0]?.address === "dave@grey.test");
      return e && e.recipients[0].attempts >= 1 ? e : null;
    }, 10_000);
    expect(seen.recipients[0]).toMatchObject({ state: "deferred", last_reply: "451 4.7.1 greylisted, try again" });
    expect(seen.recipients[0].next_attempt).toMatch(/^\d{4}-\d\d-\d\dT/);
    await waitFor(() => grey.messages.length === 1, 20_000);
    expect(grey.lines.filter((l) => / RCPT TO:<dave@grey\.test>/.test(l)).length).toBe(3);
    expect(grey.messages[0].data.toString()).toContain(`Message-ID: <${mid}>`);
    await waitFor(() => !queueList(srv).some((q) => q.recipients[0]?.address === "dave@grey.test"), 10_000);
    expect(dsnsFor(srv, "dave@grey.test")).toEqual([]); // no DSN: NOTIFY defaults to FAILURE,DELAY
  });

  test("550: a DSN in the sender's Maildir with the right parts and the remote reply text", async () => {
    const mid = uniqueId("rej");
    await inject(srv, ["nobody@reject.test"], simpleMessage({ messageId: mid, lines: ["private body"] }), "ENVID=env-550");
    const [dsn] = await waitFor(() => dsnsNow(srv, "nobody@reject.test"), 15_000);
    expect(dsn).toMatch(/^Return-Path: <>\r\nDelivered-To: alice@example\.test\r\nReceived: by mx\.test\.ringmta /);
    expect(dsn).toContain("From: Mail Delivery System <MAILER-DAEMON@mx.test.ringmta>");
    expect(dsn).toContain("Subject: Undelivered Mail Returned to Sender");
    expect(dsn).toMatch(/Content-Type: multipart\/report; report-type=delivery-status;/);
    expect(dsn).toContain("<nobody@reject.test>: host 127.0.0.1 said: 550 5.1.1 <nobody@reject.test>: Recipient address rejected: no such user");
    expect(dsn).toContain("Reporting-MTA: dns; mx.test.ringmta\r\nOriginal-Envelope-Id: env-550\r\nArrival-Date: ");
    expect(dsn).toContain("Final-Recipient: rfc822; nobody@reject.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; 127.0.0.1\r\n");
    expect(dsn).toContain("Diagnostic-Code: smtp; 550 5.1.1 <nobody@reject.test>: Recipient address rejected: no such user");
    expect(dsn).toContain("Content-Type: text/rfc822-headers");
    expect(dsn).toContain(`Message-ID: <${mid}>`);
    expect(dsn).not.toContain("private body");
    await waitFor(() => queueList(srv).length === 0, 10_000);
  });

  test("451 past max_age: a DSN (Action: failed, the last 4xx reply) and the message leaves the queue", async () => {
    await inject(srv, ["late@down.test"], simpleMessage({ lines: ["late"] }), "RET=FULL");
    const [dsn] = await waitFor(() => dsnsNow(srv, "late@down.test"), 20_000);
    expect(dsn).toContain("Action: failed\r\nStatus: 4.3.2\r\n");
    expect(dsn).toContain("gave up retrying; the last reply: host 127.0.0.1 said: 451 4.3.2 system overloaded");
    expect(dsn).toContain("Content-Type: message/rfc822");
    const attempts = down.lines.filter((l) => / RCPT TO:<late@down\.test>/.test(l)).length;
    expect(attempts).toBeGreaterThanOrEqual(3);
    await waitFor(() => queueList(srv).length === 0, 10_000);
  });

  test("NOTIFY=NEVER: a 550 bounces nothing", async () => {
    const c = await SmtpClient.connect(srv.ports.mx);
    await c.hello();
    expect((await c.cmd(`MAIL FROM:<${SENDER}>`)).code).toBe(250);
    reject.script("RCPT", ["550 5.1.1 never-notified"]);
    expect((await c.cmd("RCPT TO:<quiet@reject.test> NOTIFY=NEVER")).code).toBe(250);
    expect((await c.cmd("DATA")).code).toBe(354);
    await c.send("Subject: quiet\r\n\r\nq\r\n.\r\n");
    expect((await c.readReply()).code).toBe(250);
    c.destroy();
    await waitFor(() => reject.lines.some((l) => l.includes("quiet@reject.test")), 10_000);
    await waitFor(() => queueList(srv).length === 0, 10_000);
    expect(dsnsFor(srv, "never-notified")).toEqual([]);
  });
});

describe("MX routing through dnsmasq", () => {
  let dns: Dnsmasq | null = null;
  let cap: CaptureServer;
  let srv: Srv | null = null;
  beforeAll(async () => {
    if (!havePeer("dnsmasq")) return;
    cap = await CaptureServer.start();
    dns = await startDnsmasq({
      zones: ["test"],
      // mx1 (preference 10) is 127.0.0.2, where nothing listens on mx_port: connections are refused there.
      mx: ["two.test,mx1.two.test,10", "two.test,mx2.two.test,20", "null.test,.,0"],
      hosts: ["mx1.two.test,127.0.0.2", "mx2.two.test,127.0.0.1", "amx.test,127.0.0.1"],
    });
    srv = await startServer({
      config: `
dns = { servers = ["${dns.server}"] }
[relay]
networks = ["127.0.0.0/8"]
mx_port = ${cap.port}
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await dns?.stop();
    await cap?.close();
  });

  peerTest("dnsmasq", "two MX, the preferred one refuses connections: delivered through the second", async () => {
    await inject(srv!, ["x@two.test"], simpleMessage({ subject: "two-mx" }));
    await waitFor(() => cap.messages.some((m) => m.rcptTo[0] === "<x@two.test>"), 15_000);
    expect(queueList(srv!).length).toBe(0);
  });

  peerTest("dnsmasq", "no MX but an A record: delivered to the domain's address", async () => {
    await inject(srv!, ["y@amx.test"], simpleMessage({ subject: "a-only" }));
    await waitFor(() => cap.messages.some((m) => m.rcptTo[0] === "<y@amx.test>"), 15_000);
  });

  peerTest("dnsmasq", "null MX: bounced at once with 556 5.1.10, never delivered", async () => {
    await inject(srv!, ["z@null.test"], simpleMessage({ subject: "null-mx" }));
    const [dsn] = await waitFor(() => dsnsNow(srv!, "z@null.test"), 15_000);
    expect(dsn).toContain("Action: failed\r\nStatus: 5.1.10\r\n");
    // Decided here from DNS, not replied by any server: our own diagnostic type, no Remote-MTA (RFC 3464 §2.3.5/6).
    expect(dsn).toContain("Diagnostic-Code: X-ringmta; 556 5.1.10 null.test does not accept mail (null MX, RFC 7505)");
    expect(dsn).not.toContain("Remote-MTA");
    expect(cap.messages.some((m) => m.rcptTo[0] === "<z@null.test>")).toBe(false);
  });
});

describe("smart host: a second ringmta with STARTTLS and AUTH", () => {
  let cap: CaptureServer;
  let smart: Srv;
  let srv: Srv;
  beforeAll(async () => {
    cap = await CaptureServer.start();
    smart = await startServer({
      config: `
hostname = "smart.test.ringmta"
[relay.routes]
"far.test" = "127.0.0.1:${cap.port}"
`,
    });
    srv = await startServer({
      config: `
[relay]
networks = ["127.0.0.0/8"]
smarthost = "127.0.0.1:${smart.ports.submission}"
smarthost_user = "${SENDER}"
smarthost_password = "${USERS.alice}"
smarthost_ca = "${join(smart.dir, "server.crt")}"
`,
    });
  }, 90_000);
  afterAll(async () => {
    await srv?.dispose();
    await smart?.dispose();
    await cap?.close();
  });

  test("relayed over verified STARTTLS with AUTH, then on to the final host", async () => {
    const mid = uniqueId("smart");
    await inject(srv, ["bob@far.test"], simpleMessage({ messageId: mid }));
    await waitFor(() => cap.messages.length === 1, 20_000);
    const data = cap.messages[0].data.toString();
    expect(data).toContain(`Message-ID: <${mid}>`);
    // The smart host's Received names our TLS session and the authenticated protocol (RFC 3848 ESMTPSA).
    expect(data).toMatch(/^Received: from mx\.test\.ringmta [\s\S]*by smart\.test\.ringmta \(ringmta\) with ESMTPSA/);
    expect(data.match(/^Received:/gm)?.length).toBe(2);
    expect(smart.logs()).toMatch(/auth/i);
  });
});

describe("retry schedule across a restart, queue flush, queue delete", () => {
  let cap: CaptureServer;
  let srv: Srv;
  beforeAll(async () => {
    cap = await CaptureServer.start({ script: { RCPT: ["451 4.3.0 later, please"] } });
    srv = await startServer({
      config: `
[relay]
networks = ["127.0.0.0/8"]
[relay.routes]
"later.test" = "127.0.0.1:${cap.port}"
[queue]
retry_intervals = ["1h"]
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await cap?.close();
  });

  const rcptLines = (who: string): number => cap.lines.filter((l) => l.includes(`RCPT TO:<${who}>`)).length;

  test("a deferred message keeps its schedule across a restart; `queue flush` retries it now", async () => {
    await inject(srv, ["kim@later.test"], simpleMessage({ subject: "later" }));
    const before = await waitFor(() => {
      const e = queueList(srv).find((q) => q.recipients[0].address === "kim@later.test");
      return e && e.recipients[0].state === "deferred" ? e : null;
    }, 10_000);
    expect(before.recipients[0].attempts).toBe(1);
    const next = Date.parse(before.recipients[0].next_attempt!);
    expect(next - Date.now()).toBeGreaterThan(50 * 60_000);
    await srv.restart();
    await new Promise((r) => setTimeout(r, 1500));
    expect(rcptLines("kim@later.test")).toBe(1); // not retried at start: the schedule survived
    expect(queueList(srv)[0].recipients[0]).toMatchObject({ state: "deferred", attempts: 1, next_attempt: before.recipients[0].next_attempt });
    const flush = spawnSync(BUN, [MAIN, "queue", "flush", "--config", srv.configPath], { encoding: "utf8" });
    expect(flush.status, flush.stderr).toBe(0);
    await waitFor(() => cap.messages.some((m) => m.rcptTo[0] === "<kim@later.test>"), 10_000);
    await waitFor(() => queueList(srv).length === 0, 10_000);
  });

  test("`queue delete` of a deferred message while the server runs: gone, and the server carries on", async () => {
    cap.script("RCPT", ["451 4.3.0 later, please"]);
    await inject(srv, ["lee@later.test"], simpleMessage({ subject: "to delete" }));
    const e = await waitFor(() => queueList(srv).find((q) => q.recipients[0].state === "deferred") ?? null, 10_000);
    const del = spawnSync(BUN, [MAIN, "queue", "delete", e.id, "--config", srv.configPath], { encoding: "utf8" });
    expect(del.status, del.stderr).toBe(0);
    expect(queueList(srv)).toEqual([]);
    const flush = spawnSync(BUN, [MAIN, "queue", "flush", "--config", srv.configPath], { encoding: "utf8" });
    expect(flush.status).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(rcptLines("lee@later.test")).toBe(1);
    // The server still relays.
    await inject(srv, ["max@later.test"], simpleMessage({ subject: "after delete" }));
    await waitFor(() => cap.messages.some((m) => m.rcptTo[0] === "<max@later.test>"), 10_000);
    expect(srv.logs()).not.toMatch(/queue\.corrupt|corrupt item|spool update failed/);
  });
});

describe("Postfix as the receiving MX", () => {
  let pf: Postfix | null = null;
  let srv: Srv | null = null;
  beforeAll(async () => {
    if (!havePeer("postfix")) return;
    pf = await startPostfix("mx", { virtualDomains: ["post.test"], mailboxes: ["pat@post.test"] });
    srv = await startServer({
      config: `
[relay]
networks = ["127.0.0.0/8"]
[relay.routes]
"post.test" = "127.0.0.1:${pf.port}"
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await pf?.stop();
  });

  peerTest("postfix", "mail relayed by ringmta lands in Postfix's Maildir, intact", async () => {
    const mid = uniqueId("pf");
    const body = simpleMessage({ messageId: mid, to: "pat@post.test", lines: [".a leading dot", "café", "end"] });
    await inject(srv!, ["pat@post.test"], body);
    const [file] = await waitFor(() => {
      const f = pf!.delivered("post.test", "pat");
      return f.length > 0 ? f : null;
    }, 30_000);
    // Postfix stores Maildir files with LF line ends (virtual(8)); otherwise the message is the one sent.
    const got = readFileSync(file, "utf8");
    const sent = body.toString("utf8").replace(/\r\n/g, "\n");
    expect(got.endsWith(sent)).toBe(true);
    const head = got.slice(0, got.length - sent.length);
    expect(head).toMatch(/by mx\.test\.ringmta \(ringmta\)/); // our Received, below Postfix's own
    expect(head).toMatch(/by postfix-mx\.test \(Postfix\)/);
    expect(pf!.log()).toMatch(/status=sent/);
    await waitFor(() => queueList(srv!).length === 0, 10_000);
  });
});

describe("crash safety of outbound delivery", () => {
  let cap: CaptureServer;
  let srv: Srv;
  beforeAll(async () => {
    // The first final reply comes late: the server is killed while the transaction is open.
    cap = await CaptureServer.start({ delayMs: { DOT: 1500 } });
    srv = await startServer({
      config: `
[relay]
networks = ["127.0.0.0/8"]
[relay.routes]
"crash.test" = "127.0.0.1:${cap.port}"
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await cap?.close();
  });

  test("SIGKILL during relay loses nothing: after restart the message is delivered (at least once)", async () => {
    const mid = uniqueId("crash");
    await inject(srv, ["eve@crash.test"], simpleMessage({ messageId: mid }));
    await waitFor(() => cap.lines.some((l) => l.endsWith(" DATA")), 10_000);
    await srv.kill9();
    await srv.restart();
    await waitFor(() => cap.messages.filter((m) => m.data.toString().includes(mid)).length >= 1, 20_000);
    await waitFor(() => queueList(srv).length === 0, 20_000);
    // The reply to the first attempt's dot never arrived: that copy may count twice (at least once), never zero.
    expect(cap.messages.filter((m) => m.data.toString().includes(mid)).length).toBeGreaterThanOrEqual(1);
  });
});

describe("delay warnings (queue.delay_warning, NOTIFY=DELAY)", () => {
  let cap: CaptureServer;
  let srv: Srv;
  beforeAll(async () => {
    cap = await CaptureServer.start({ script: { RCPT: ["451 4.2.0 mailbox busy", "451 4.2.0 mailbox busy", "451 4.2.0 mailbox busy"] } });
    srv = await startServer({
      config: `
[relay]
networks = ["127.0.0.0/8"]
[relay.routes]
"slow.test" = "127.0.0.1:${cap.port}"
[queue]
retry_intervals = ["1s"]
max_age = "1h"
delay_warning = "1s"
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await cap?.close();
  });

  test("one 'delayed' DSN once the message waited past delay_warning (default NOTIFY), then delivered without more", async () => {
    await inject(srv, ["sam@slow.test"], simpleMessage({ subject: "slow" }), "ENVID=slow-1");
    await waitFor(() => cap.messages.some((m) => m.rcptTo[0] === "<sam@slow.test>"), 20_000);
    await waitFor(() => queueList(srv).length === 0, 10_000);
    const dsns = dsnList(srv, "sam@slow.test");
    expect(dsns.length).toBe(1);
    expect(dsns[0]).toContain("Subject: Delayed Mail (still being retried)");
    expect(dsns[0]).toContain("Action: delayed\r\nStatus: 4.2.0\r\n");
    expect(dsns[0]).toContain("Original-Envelope-Id: slow-1");
    expect(dsns[0]).toMatch(/Will-Retry-Until: /);
    expect(dsns[0]).toContain("451 4.2.0 mailbox busy");
  });

  test("NOTIFY=FAILURE only: no delay warning; NOTIFY=SUCCESS to a server with DSN: passed on, so no DSN from us", async () => {
    cap.script("RCPT", ["451 4.2.0 mailbox busy", "451 4.2.0 mailbox busy"]);
    const c = await SmtpClient.connect(srv.ports.mx);
    await c.hello();
    expect((await c.cmd(`MAIL FROM:<${SENDER}>`)).code).toBe(250);
    expect((await c.cmd("RCPT TO:<fay@slow.test> NOTIFY=FAILURE")).code).toBe(250);
    expect((await c.cmd("DATA")).code).toBe(354);
    await c.send("Subject: f\r\n\r\nf\r\n.\r\n");
    expect((await c.readReply()).code).toBe(250);
    expect((await c.cmd(`MAIL FROM:<${SENDER}>`)).code).toBe(250);
    expect((await c.cmd("RCPT TO:<sue@slow.test> NOTIFY=SUCCESS")).code).toBe(250);
    expect((await c.cmd("DATA")).code).toBe(354);
    await c.send("Subject: s\r\n\r\ns\r\n.\r\n");
    expect((await c.readReply()).code).toBe(250);
    c.destroy();
    await waitFor(() => ["fay", "sue"].every((u) => cap.messages.some((m) => m.rcptTo[0].startsWith(`<${u}@slow.test>`))), 20_000);
    await waitFor(() => queueList(srv).length === 0, 10_000);
    expect(dsnList(srv, "fay@slow.test")).toEqual([]);
    // The capture server offers DSN, so NOTIFY is passed on and the duty with it: no DSN from us.
    expect(cap.messages.find((m) => m.rcptTo[0].startsWith("<sue@slow.test>"))!.rcptTo[0]).toBe("<sue@slow.test> NOTIFY=SUCCESS");
    expect(dsnList(srv, "sue@slow.test")).toEqual([]);
  });
});
