/**
 * Issue 14 item 2 / CONTRACT "[local]" delivery = "lmtp": local recipients go to a real Dovecot LMTP (Debian
 * dovecot-lmtpd), over its Unix socket and over TCP on loopback, and are read back over IMAP (python3 imaplib).
 * Each recipient's LMTP reply is its outcome (RFC 2033 §4.2): one accepted by Dovecot, one it refuses (unknown
 * user, 550 5.1.1) — recorded per recipient, and the refused one bounced in a DSN; Dovecot down → deferred,
 * retried, delivered once it is back.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect } from "vitest";
import {
  BUN,
  MAIN,
  HOSTNAME,
  SmtpClient,
  peerTest,
  sendMail,
  simpleMessage,
  startDovecot,
  startServer,
  uniqueId,
  waitFor,
  type Dovecot,
  type Peer,
  type Srv,
} from "../helpers/index.ts";

const ALICE_IMAP = "imap-pass-alice";
const NEED: Peer[] = ["dovecot", "lmtp", "python3"];

let dovecot: Dovecot | null = null;
const servers: Srv[] = [];
afterAll(async () => {
  for (const s of servers) await s.dispose();
  await dovecot?.stop();
}, 30_000);

interface LogLine {
  event: string;
  id?: string;
  recipient?: string;
  courier?: string;
  outcome?: string;
  reply?: string;
  remote?: string;
}

function attempts(srv: Srv, id: string): LogLine[] {
  return srv
    .logs()
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes(id))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.event === "delivery.attempt");
}

interface QueueEntry {
  id: string;
  recipients: Array<{ address: string; state: string; attempts: number; last_reply: string }>;
}

function queueList(srv: Srv): QueueEntry[] {
  const r = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv.configPath], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as QueueEntry[];
}

/** The queue id from "250 2.0.0 ... queued as ID" (the server's reply text names it). */
function queueId(reply: string): string {
  const m = /queued as (\S+)/.exec(reply);
  if (m === null) throw new Error(`no queue id in ${reply}`);
  return m[1]!;
}

async function send(srv: Srv, from: string, to: string[], message: Buffer): Promise<string> {
  const c = await SmtpClient.connect(srv.ports.mx);
  await c.hello();
  const r = await sendMail(c, from, to, message);
  expect(r.final?.code, r.final?.raw).toBe(250);
  await c.cmd("QUIT");
  c.destroy();
  return queueId(r.final!.raw);
}

async function dovecotUp(): Promise<Dovecot> {
  dovecot ??= await startDovecot({ users: { "alice@example.test": ALICE_IMAP } });
  return dovecot;
}

describe("LMTP delivery into Dovecot", () => {
  peerTest(
    NEED,
    "over the Unix socket: alice delivered (read back over IMAP), bob refused by Dovecot 550 5.1.1 and bounced",
    async () => {
      const dv = await dovecotUp();
      const srv = await startServer({ config: `[local]\ndelivery = "lmtp"\nlmtp = "unix:${dv.lmtpSocket}"\n` });
      servers.push(srv);
      const mid = uniqueId("lmtp-unix");
      const message = simpleMessage({ messageId: mid, to: "alice@example.test" });
      // bob is a user of ringmta (its users file) but not of Dovecot: the LMTP RCPT decides.
      const id = await send(srv, "alice@example.test", ["alice@example.test", "bob@example.test"], message);

      const log = await waitFor(() => {
        const a = attempts(srv, id);
        return a.length >= 2 ? a : null;
      }, 20_000);
      const alice = log.find((l) => l.recipient === "alice@example.test")!;
      const bob = log.find((l) => l.recipient === "bob@example.test")!;
      // `remote` names the LMTP peer that replied (the socket: localhost).
      expect(alice).toMatchObject({ courier: "lmtp", outcome: "delivered", remote: "localhost" });
      expect(alice.reply).toMatch(/^250 2\.0\.0 .*Saved/);
      expect(bob).toMatchObject({ courier: "lmtp", outcome: "failed", remote: "localhost" });
      expect(bob.reply).toMatch(/^550 5\.1\.1 /);

      // alice's INBOX: the message, then our DSN for bob (the sender is alice, so it comes back over LMTP too).
      const inbox = await waitFor(() => {
        const got = dv.fetchInbox("alice@example.test", ALICE_IMAP);
        return got.exists >= 2 ? got : null;
      }, 20_000);
      const isDsn = (m: Buffer): boolean => m.includes("multipart/report");
      const original = inbox.messages.find((m) => m.includes(mid) && !isDsn(m))!.toString("latin1");
      // Dovecot writes its own trace fields; ours is the Received field, then the message exactly as sent.
      expect(original).toMatch(/^Return-Path: <alice@example\.test>\r\n/);
      expect(original).toContain("Delivered-To: alice@example.test\r\n");
      expect(original).toContain(`by ${HOSTNAME}`);
      expect(original.endsWith(message.toString("latin1"))).toBe(true);
      const dsn = inbox.messages.find(isDsn);
      expect(dsn, "a DSN for bob").toBeDefined();
      const text = dsn!.toString("latin1");
      expect(text).toMatch(/Final-Recipient: rfc822; ?bob@example\.test/i);
      expect(text).toMatch(/Action: failed/i);
      expect(text).toMatch(/Status: 5\.1\.1/i);
      expect(text).not.toMatch(/Final-Recipient: rfc822; ?alice@example\.test/i);
      // The metrics name the courier.
      const metrics = await (await fetch(`http://127.0.0.1:${srv.ports.metrics}/metrics`)).text();
      expect(metrics).toMatch(/^ringmta_deliveries_total\{courier="lmtp",outcome="delivered"\} [1-9]/m);
      expect(metrics).toMatch(/^ringmta_deliveries_total\{courier="lmtp",outcome="failed"\} 1$/m);
      // SIGHUP with another LMTP server: said to apply at the next restart (the workers keep their courier).
      writeFileSync(srv.configPath, readFileSync(srv.configPath, "utf8").replace(`unix:${dv.lmtpSocket}`, "127.0.0.1:24"));
      process.kill(srv.pid, "SIGHUP");
      await waitFor(() => (srv.logs().includes("config.local_delivery_changed") ? true : null), 10_000);
      // The item is finished: nothing of it is left in the queue.
      expect(queueList(srv).find((q) => q.id === id)).toBeUndefined();
    },
    120_000,
  );

  peerTest(
    NEED,
    "over TCP: Dovecot down → deferred and retried; delivered once it is back, one copy",
    async () => {
      const dv = await dovecotUp();
      const srv = await startServer({
        config: `[local]\ndelivery = "lmtp"\nlmtp = "127.0.0.1:${dv.lmtpPort}"\n[queue]\nretry_intervals = ["1s"]\n`,
      });
      servers.push(srv);
      await dv.stop();
      const mid = uniqueId("lmtp-tcp");
      const id = await send(srv, "carol@remote.test", ["alice@example.test"], simpleMessage({ messageId: mid, to: "alice@example.test" }));

      const deferred = await waitFor(() => {
        const q = queueList(srv).find((e) => e.id === id);
        const r = q?.recipients[0];
        return r !== undefined && r.state === "deferred" && r.attempts >= 2 ? r : null;
      }, 30_000);
      expect(deferred.last_reply).toMatch(/^451 4\.4\.1 .*127\.0\.0\.1/);
      expect(attempts(srv, id).every((a) => a.courier === "lmtp" && a.outcome === "deferred")).toBe(true);

      await dv.start();
      await waitFor(() => (attempts(srv, id).some((a) => a.outcome === "delivered") ? true : null), 30_000);
      const inbox = dv.fetchInbox("alice@example.test", ALICE_IMAP);
      expect(inbox.messages.filter((m) => m.includes(mid)).length).toBe(1);
      await waitFor(() => (queueList(srv).some((e) => e.id === id) ? null : true), 10_000);
    },
    120_000,
  );
});
