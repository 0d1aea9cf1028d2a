/**
 * Relay policy (CONTRACT "Guarantees", issue 3 §8): unauthenticated relay refused on every listener, with or
 * without TLS; authenticated relay accepted and queued; relay.networks may relay without AUTH; after AUTH the
 * MAIL FROM must be the user's own address or an alias that includes the user (553 5.7.1 otherwise).
 * remote.test is routed to a closed local port, so a queued relay message stays in the spool (deferred) whether
 * or not a remote courier runs.
 */
import { execFile } from "node:child_process";
import { describe, expect, test } from "vitest";
import {
  BUN,
  MAIN,
  REPO,
  SmtpClient,
  USERS,
  findDelivered,
  sendMail,
  simpleMessage,
  uniqueId,
  useServer,
  waitFor,
  type Reply,
} from "../helpers/index.ts";

const plain = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`, "utf8").toString("base64");
const codeOf = (r: Reply): string => `${r.code} ${r.enhanced}`;
const ALICE = "alice@example.test";

/** Nothing listens on port 9 (discard) on loopback here; a route to it defers. */
const ROUTES = '[relay.routes]\n"remote.test" = "127.0.0.1:9"\n';

interface QueueEntry {
  id: string;
  sender: string;
  recipients: Array<{ address: string; state: string }>;
}

function queueList(configPath: string): Promise<QueueEntry[]> {
  return new Promise((resolve, reject) =>
    execFile(BUN, [MAIN, "queue", "list", "--json", "--config", configPath], { cwd: REPO, timeout: 30_000 }, (err, out, errOut) =>
      err ? reject(new Error(`queue list: ${err.message}\n${errOut}`)) : resolve(JSON.parse(String(out)) as QueueEntry[]),
    ),
  );
}

describe("relay with the default listeners", () => {
  const srv = useServer({ config: ROUTES });

  async function authed(listener: "submission" | "submissions" | "mx", user = ALICE, pass: string = USERS.alice): Promise<SmtpClient> {
    const implicit = listener === "submissions";
    const c = await SmtpClient.connect(srv().ports[listener], { tls: implicit });
    await c.hello();
    if (!implicit) {
      expect((await c.startTls()).code).toBe(220);
      expect((await c.cmd("EHLO client.test")).code).toBe(250);
    }
    expect(codeOf(await c.cmd(`AUTH PLAIN ${plain(user, pass)}`))).toBe("235 2.7.0");
    return c;
  }

  describe("unauthenticated relay is refused on every listener", () => {
    test("mx plaintext: 554 5.7.1 at RCPT", async () => {
      const c = await SmtpClient.connect(srv().ports.mx);
      await c.hello();
      expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
      expect(codeOf(await c.cmd("RCPT TO:<victim@remote.test>"))).toBe("554 5.7.1");
      expect(codeOf(await c.cmd("RCPT TO:<victim@REMOTE.test>"))).toBe("554 5.7.1");
      // A local recipient in the same transaction is still fine (the refusal is per recipient).
      expect((await c.cmd(`RCPT TO:<${ALICE}>`)).code).toBe(250);
      c.destroy();
    });

    test("mx after STARTTLS: 554 5.7.1 at RCPT", async () => {
      const c = await SmtpClient.connect(srv().ports.mx);
      await c.hello();
      expect((await c.startTls()).code).toBe(220);
      await c.cmd("EHLO client.test");
      expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
      expect(codeOf(await c.cmd("RCPT TO:<victim@remote.test>"))).toBe("554 5.7.1");
      c.destroy();
    });

    test("submission after STARTTLS: 530 5.7.0 at MAIL, and RCPT is out of sequence", async () => {
      const c = await SmtpClient.connect(srv().ports.submission);
      await c.hello();
      expect((await c.startTls()).code).toBe(220);
      await c.cmd("EHLO client.test");
      expect(codeOf(await c.cmd("MAIL FROM:<sender@remote.test>"))).toBe("530 5.7.0");
      expect(codeOf(await c.cmd("RCPT TO:<victim@remote.test>"))).toBe("503 5.5.1");
      c.destroy();
    });

    test("submission plaintext: 530 5.7.0 at MAIL", async () => {
      const c = await SmtpClient.connect(srv().ports.submission);
      await c.hello();
      expect(codeOf(await c.cmd("MAIL FROM:<sender@remote.test>"))).toBe("530 5.7.0");
      c.destroy();
    });

    test("submissions (implicit TLS): 530 5.7.0 at MAIL", async () => {
      const c = await SmtpClient.connect(srv().ports.submissions, { tls: true });
      await c.hello();
      expect(codeOf(await c.cmd("MAIL FROM:<sender@remote.test>"))).toBe("530 5.7.0");
      expect(codeOf(await c.cmd("RCPT TO:<victim@remote.test>"))).toBe("503 5.5.1");
      c.destroy();
    });
  });

  describe("authenticated relay is accepted and queued", () => {
    for (const listener of ["submission", "submissions", "mx"] as const) {
      test(`${listener}: AUTH, remote RCPT → 250, end of data → 250, and queue list shows it`, async () => {
        const c = await authed(listener);
        const rcpt = `${listener}-${Date.now()}@remote.test`;
        const res = await sendMail(c, ALICE, [rcpt], simpleMessage({ from: ALICE, to: rcpt }));
        c.destroy();
        expect(codeOf(res.mail)).toBe("250 2.1.0");
        expect(res.rcpts.map(codeOf)).toEqual(["250 2.1.5"]);
        expect(res.final?.code, res.final?.raw).toBe(250);
        const id = /queued as (\S+)/.exec(res.final!.raw)?.[1];
        expect(id, res.final!.raw).toBeDefined();
        const entry = await waitFor(async () => (await queueList(srv().configPath)).find((e) => e.id === id), 15_000);
        expect(entry.sender).toBe(ALICE);
        expect(entry.recipients.map((r) => r.address)).toEqual([rcpt]);
        expect(["queued", "deferred"]).toContain(entry.recipients[0]!.state);
        // The login is recorded with the message (issue 3 §9: for the logs and the outbound side).
        const accepted = srv()
          .logs()
          .split("\n")
          .filter((l) => l.includes(id!) && l.includes("smtp.accepted"));
        expect(accepted).toHaveLength(1);
        expect(JSON.parse(accepted[0]!)).toMatchObject({ event: "smtp.accepted", id, auth: ALICE, listener });
      });
    }
  });

  describe("sender / login match", () => {
    test("after AUTH as alice, MAIL FROM:<bob@…> → 553 5.7.1", async () => {
      const c = await authed("submission");
      expect(codeOf(await c.cmd("MAIL FROM:<bob@example.test>"))).toBe("553 5.7.1");
      expect(codeOf(await c.cmd("MAIL FROM:<alice@remote.test>"))).toBe("553 5.7.1");
      expect(codeOf(await c.cmd(`MAIL FROM:<${ALICE}>`))).toBe("250 2.1.0");
      c.destroy();
    });

    test("after AUTH, MAIL FROM:<> → 553 5.7.1", async () => {
      const c = await authed("submissions");
      expect(codeOf(await c.cmd("MAIL FROM:<>"))).toBe("553 5.7.1");
      c.destroy();
    });

    test("an alias whose targets include alice (postmaster@, team@) → 250", async () => {
      const c = await authed("submission");
      expect(codeOf(await c.cmd("MAIL FROM:<postmaster@example.test>"))).toBe("250 2.1.0");
      expect((await c.cmd("RSET")).code).toBe(250);
      expect(codeOf(await c.cmd("MAIL FROM:<team@example.test>"))).toBe("250 2.1.0");
      c.destroy();
    });

    test("an alias that does not include the user is refused (bob may not send as postmaster@)", async () => {
      const c = await authed("submission", "bob@example.test", USERS.bob);
      expect(codeOf(await c.cmd("MAIL FROM:<postmaster@example.test>"))).toBe("553 5.7.1");
      expect(codeOf(await c.cmd("MAIL FROM:<team@example.test>"))).toBe("250 2.1.0");
      c.destroy();
    });

    test("the domain compares case-insensitively: MAIL FROM:<alice@EXAMPLE.test> → 250", async () => {
      const c = await authed("submission");
      expect(codeOf(await c.cmd("MAIL FROM:<alice@EXAMPLE.test>"))).toBe("250 2.1.0");
      c.destroy();
    });

    test("unauthenticated inbound bounce: MAIL FROM:<> on mx → 250 and delivered locally", async () => {
      const c = await SmtpClient.connect(srv().ports.mx);
      await c.hello();
      const mid = uniqueId("bounce");
      const res = await sendMail(c, "", [ALICE], simpleMessage({ from: "MAILER-DAEMON@remote.test", to: ALICE, messageId: mid }));
      c.destroy();
      expect(res.final?.code, res.final?.raw).toBe(250);
      await waitFor(() => findDelivered(srv().dataDir, ALICE, mid).length === 1, 15_000);
    });
  });
});

describe("relay.networks", () => {
  const srv = useServer({ config: `${ROUTES}[relay]\nnetworks = ["127.0.0.2/32", "2001:db8::/32"]\n` });

  test("a client inside relay.networks (127.0.0.2) relays without AUTH on mx; one outside (127.0.0.3) does not", async () => {
    const inside = await SmtpClient.connect(srv().ports.mx, { localAddress: "127.0.0.2" });
    await inside.hello();
    const rcpt = `net-${Date.now()}@remote.test`;
    const res = await sendMail(inside, "app@inside.test", [rcpt], simpleMessage({ to: rcpt }));
    inside.destroy();
    expect(res.rcpts.map(codeOf)).toEqual(["250 2.1.5"]);
    expect(res.final?.code, res.final?.raw).toBe(250);
    const id = /queued as (\S+)/.exec(res.final!.raw)?.[1];
    const entry = await waitFor(async () => (await queueList(srv().configPath)).find((e) => e.id === id), 15_000);
    expect(entry.recipients.map((r) => r.address)).toEqual([rcpt]);

    const outside = await SmtpClient.connect(srv().ports.mx, { localAddress: "127.0.0.3" });
    await outside.hello();
    expect((await outside.cmd("MAIL FROM:<app@outside.test>")).code).toBe(250);
    expect(codeOf(await outside.cmd("RCPT TO:<victim@remote.test>"))).toBe("554 5.7.1");
    outside.destroy();
  });
});
