/**
 * Issue 6 §3: one structured JSON line per event on stderr; grepping the log by a queue id tells the message's
 * whole story (accepted → each delivery attempt → done); connections are logged when they open and close; no
 * password and no message body ever reaches the log. `serve --log-format text` prints readable lines.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  REPO,
  SmtpClient,
  USERS,
  countMessageId,
  sendMail,
  simpleMessage,
  spawnRingmta,
  startServer,
  uniqueId,
  useServer,
  waitFor,
  waitFor220,
  type Spawned,
  type Srv,
} from "../helpers/index.ts";

interface LogLine {
  ts: string;
  level: string;
  event: string;
  [k: string]: unknown;
}

function parseLines(text: string): LogLine[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as LogLine);
}

const plain = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString("base64");
const b64 = (s: string): string => Buffer.from(s).toString("base64");

/** Sends one message on the mx listener; returns its queue id from the 250 reply (RFC 5321 §4.2: free text). */
async function sendForId(port: number, to: string[], body: Buffer): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.hello();
    const r = await sendMail(c, "sender@remote.test", to, body);
    expect(r.final?.code, r.final?.raw).toBe(250);
    await c.cmd("QUIT");
    const m = /queued as (\S+)/.exec(r.final!.lines[0]!);
    expect(m, r.final!.raw).not.toBeNull();
    return m![1]!;
  } finally {
    c.destroy();
  }
}

describe("JSON logs", () => {
  const srv = useServer();
  const lines = (): LogLine[] => parseLines(srv().logs());
  const story = (id: string): LogLine[] => srv().logs().split("\n").filter((l) => l.includes(id)).map((l) => JSON.parse(l) as LogLine);

  async function storyUntilDone(id: string): Promise<LogLine[]> {
    return waitFor(() => {
      const s = story(id);
      return s.some((l) => l.event === "queue.done") ? s : null;
    }, 15_000);
  }

  test("every line the server writes is one JSON object with ts, level and event", async () => {
    await sendForId(srv().ports.mx, ["alice@example.test"], simpleMessage({ to: "alice@example.test" }));
    const all = lines();
    expect(all.length).toBeGreaterThan(3);
    for (const l of all) {
      expect(l.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      expect(["info", "warn", "error"]).toContain(l.level);
      expect(l.event).toMatch(/^[a-z_]+(\.[a-z_]+)*$/);
    }
    expect(all.some((l) => l.event === "server.ready")).toBe(true);
  });

  test("grepping by queue id tells the story: smtp.accepted, delivery.attempt per recipient, queue.done, in order", async () => {
    const body = simpleMessage({ messageId: uniqueId("story"), to: "team@example.test" });
    const id = await sendForId(srv().ports.mx, ["team@example.test", "postmaster@example.test"], body);
    const s = await storyUntilDone(id);
    const events = s.map((l) => l.event);

    const accepted = s.find((l) => l.event === "smtp.accepted")!;
    expect(accepted, JSON.stringify(s)).toBeDefined();
    expect(accepted.id).toBe(id);
    expect(accepted.from).toBe("sender@remote.test");
    // team@ → alice + bob, postmaster@ → alice: the final mailboxes, each once.
    expect([...(accepted.to as string[])].sort()).toEqual(["alice@example.test", "bob@example.test"]);
    expect(accepted.size).toBe(body.length);
    expect(accepted.listener).toBe("mx");
    expect(accepted.client).toBe("127.0.0.1");

    const attempts = s.filter((l) => l.event === "delivery.attempt");
    expect(attempts.length).toBe(2);
    for (const a of attempts) {
      expect(a.id).toBe(id);
      expect(a.outcome).toBe("delivered");
    }
    expect(events.filter((e) => e === "queue.done").length).toBe(1);
    const at = (e: string): number => events.indexOf(e);
    expect(at("smtp.accepted")).toBeLessThan(at("delivery.attempt"));
    expect(events.lastIndexOf("delivery.attempt")).toBeLessThan(at("queue.done"));
  });

  test("delivery.attempt names the recipient, the courier and the duration (issue 6 §3)", async () => {
    const id = await sendForId(srv().ports.mx, ["bob@example.test"], simpleMessage({ to: "bob@example.test" }));
    const s = await storyUntilDone(id);
    const a = s.find((l) => l.event === "delivery.attempt")!;
    expect(a, JSON.stringify(s)).toBeDefined();
    expect(a.recipient).toBe("bob@example.test");
    expect(a.courier).toBe("local");
    expect(typeof a.duration_ms).toBe("number");
  });

  test("connections are logged when they open and close, with client, listener, TLS and the AUTH user", async () => {
    const ofSubmission = (event: string): LogLine[] => lines().filter((l) => l.event === event && l.listener === "submission");
    const opensBefore = ofSubmission("connection.open").length;
    const closesBefore = ofSubmission("connection.close").length;
    const c = await SmtpClient.connect(srv().ports.submission);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    await c.cmd("EHLO client.test");
    expect((await c.cmd(`AUTH PLAIN ${plain("alice@example.test", USERS.alice)}`)).code).toBe(235);
    await c.cmd("QUIT");
    await c.closed();
    c.destroy();
    // Both lines are written by the time the server has closed the socket; allow a moment for the pipe.
    const open = await waitFor(() => ofSubmission("connection.open")[opensBefore], 3_000).catch(() => undefined);
    const close = await waitFor(() => ofSubmission("connection.close")[closesBefore], 3_000).catch(() => undefined);
    expect(open, "a connection.open line {client, listener}").toBeDefined();
    expect(open!.client).toBe("127.0.0.1");
    expect(close, "a connection.close line {client, listener, tls, auth}").toBeDefined();
    expect(close!.client).toBe("127.0.0.1");
    expect(String(close!.tls)).toMatch(/TLSv1\.[23]/);
    expect(close!.auth).toBe("alice@example.test");
  });

  test("no password (plain or base64) and no message body text ever appears in the log", async () => {
    const marker = `BODY-MARKER-${uniqueId("secret")}`;
    const wrong = `wrong-${uniqueId("pw")}`;
    const c = await SmtpClient.connect(srv().ports.submission);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    await c.cmd("EHLO client.test");
    // A failed AUTH LOGIN (user, then password, RFC 4954 §4 continuation lines) and a good AUTH PLAIN.
    expect((await c.cmd("AUTH LOGIN")).code).toBe(334);
    expect((await c.cmd(b64("alice@example.test"))).code).toBe(334);
    expect((await c.cmd(b64(wrong))).code).toBe(535);
    expect((await c.cmd(`AUTH PLAIN ${plain("alice@example.test", USERS.alice)}`)).code).toBe(235);
    const mid = uniqueId("nolog");
    const r = await sendMail(c, "alice@example.test", ["bob@example.test"], simpleMessage({ messageId: mid, lines: ["first line", marker, "last line"] }));
    expect(r.final?.code, r.final?.raw).toBe(250);
    await c.cmd("QUIT");
    c.destroy();
    await waitFor(() => countMessageId(srv().dataDir, "bob@example.test", mid) === 1, 15_000);
    const id = /queued as (\S+)/.exec(r.final!.lines[0]!)![1]!;
    await storyUntilDone(id);

    const log = srv().logs();
    // The events happened and were logged (so the absence below is not vacuous).
    expect(lines().some((l) => l.event === "smtp.auth" && l.user === "alice@example.test")).toBe(true);
    expect(lines().some((l) => l.event === "smtp.auth_failed")).toBe(true);
    for (const secret of [USERS.alice, USERS.bob, wrong, plain("alice@example.test", USERS.alice), b64(wrong), b64(USERS.alice)]) {
      expect(log.includes(secret), `log contains ${secret}`).toBe(false);
    }
    expect(log.includes(marker)).toBe(false);
    expect(log.includes("BODY-MARKER")).toBe(false);
  });
});

describe("--log-format text", () => {
  let srv: Srv;
  let text: Spawned;
  beforeAll(async () => {
    srv = await startServer();
    // Same config and ports, started by hand with the text format.
    await srv.stop();
    text = spawnRingmta(["serve", "--config", srv.configPath, "--log-format", "text"], REPO);
    await waitFor220(srv.ports.mx, text.proc, text.logs, 20_000);
  }, 60_000);
  afterAll(async () => {
    if (text && text.proc.exitCode === null && text.proc.signalCode === null) {
      const gone = new Promise((r) => text.proc.once("exit", r));
      text.proc.kill("SIGTERM");
      await gone;
    }
    await srv?.dispose();
  }, 30_000);

  test("serve --log-format text prints readable lines: time, level, event, key=value fields", async () => {
    const id = await sendForId(srv.ports.mx, ["alice@example.test"], simpleMessage({ to: "alice@example.test" }));
    const line = await waitFor(() => text.logs().split("\n").find((l) => / smtp\.accepted /.test(l) && l.includes(id)), 10_000);
    expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO +smtp\.accepted( \w+=\S+)+/);
    expect(line).toContain(`id=${id}`);
    expect(line).toContain("from=sender@remote.test");
    expect(line).toContain("listener=mx");
    await waitFor(() => text.logs().split("\n").some((l) => / queue\.done /.test(l) && l.includes(id)), 10_000);
    // No JSON in text mode.
    for (const l of text.logs().split("\n")) if (l !== "") expect(l.startsWith("{"), l).toBe(false);
  });
});
