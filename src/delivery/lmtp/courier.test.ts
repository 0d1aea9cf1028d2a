/**
 * The LMTP courier against a real Dovecot LMTP (Debian dovecot-lmtpd), through the real Bun dialer: per-recipient
 * outcomes from one transaction, connection reuse (RSET between messages, one connection for a run of messages),
 * and a reused connection that died while idle replaced by a fresh one without a failed delivery.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createBunDialer } from "../../transport/bun/index.ts";
import { peerTest, startDovecot, type Dovecot } from "../../../test/helpers/index.ts";
import type { Envelope, EnvelopeRecipient, StoredMessage } from "../../mail/index.ts";
import { RFC5321_TIMEOUTS } from "../remote/index.ts";
import { LmtpCourier, parseLmtpTarget } from "./index.ts";

const PASSWORD = "pw-alice";
let dovecot: Dovecot | null = null;
const haveDovecot = ["dovecot", "lmtp", "python3"] as const;

beforeAll(async () => {
  try {
    dovecot = await startDovecot({ users: { "alice@example.test": PASSWORD, "bob@example.test": "pw-bob" } });
  } catch {
    dovecot = null; // the peer tests below report the missing package
  }
}, 30_000);
afterAll(async () => {
  await dovecot?.stop();
}, 15_000);

/** A TCP relay to Dovecot's LMTP port that counts connections and can cut them all. */
async function relay(to: number): Promise<{ port: number; connections: () => number; cut: () => void; close: () => Promise<void> }> {
  let n = 0;
  const open = new Set<Socket>();
  const srv: Server = createServer((c) => {
    n++;
    const up = connect(to, "127.0.0.1");
    open.add(c);
    open.add(up);
    c.pipe(up);
    up.pipe(c);
    const end = (): void => {
      c.destroy();
      up.destroy();
    };
    c.on("error", end);
    up.on("error", end);
    c.on("close", end);
    up.on("close", end);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    connections: () => n,
    cut: () => {
      for (const s of open) s.destroy();
      open.clear();
    },
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

const local = (address: string): EnvelopeRecipient => {
  const [localPart, domain] = address.split("@") as [string, string];
  return { rcpt: address, address, route: { kind: "local", domain, localPart } };
};

let seq = 0;
function message(rcpts: EnvelopeRecipient[], mid: string): StoredMessage {
  const bytes = new TextEncoder().encode(
    `Received: by mx.test; Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <${mid}>\r\nSubject: lmtp\r\n\r\n.dot line\r\nbody\r\n`,
  );
  const envelope: Envelope = {
    sender: "carol@remote.test",
    recipients: rcpts,
    body: "8BITMIME",
    smtputf8: false,
    client: { address: "127.0.0.1", helo: "c.test", listener: "mx" },
    arrival: Date.now(),
  };
  return { id: `L${++seq}`, envelope, size: bytes.length, chunks: () => [bytes] };
}

const FAST = { ...RFC5321_TIMEOUTS, connectMs: 2000, greetingMs: 5000, commandMs: 5000, dataEndMs: 10_000 };

describe("parseLmtpTarget", () => {
  test("unix:/path, host:port and [v6]:port; anything else is null", () => {
    expect(parseLmtpTarget("unix:/run/dovecot/lmtp")).toEqual({ address: "", port: 0, name: "localhost", unix: "/run/dovecot/lmtp" });
    expect(parseLmtpTarget("127.0.0.1:24")).toEqual({ address: "127.0.0.1", port: 24, name: "127.0.0.1" });
    expect(parseLmtpTarget("[::1]:24")).toEqual({ address: "::1", port: 24, name: "::1" });
    expect(parseLmtpTarget("unix:relative")).toBeNull();
    expect(parseLmtpTarget("dovecot")).toBeNull();
  });
});

describe("LmtpCourier against Dovecot", () => {
  peerTest([...haveDovecot], "one transaction, one outcome per recipient: alice 250, ghost 550 5.1.1, bob 250", async () => {
    const courier = new LmtpCourier({ target: `unix:${dovecot!.lmtpSocket}`, hostname: "mx.test", timeouts: FAST }, createBunDialer());
    const rs = [local("alice@example.test"), local("ghost@example.test"), local("bob@example.test")];
    const reported: number[][] = [];
    const out = await courier.deliver(message(rs, "per-rcpt@test"), rs, { report: (i) => void reported.push(i) });
    expect(out.map((o) => `${o.kind} ${o.code} ${o.enhanced}`)).toEqual([
      "delivered 250 2.0.0",
      "failed 550 5.1.1",
      "delivered 250 2.0.0",
    ]);
    expect(out.every((o) => o.remoteMta === "localhost")).toBe(true);
    expect(reported).toEqual([[0, 1, 2]]);
    courier.close();
    const inbox = dovecot!.fetchInbox("alice@example.test", PASSWORD);
    const got = inbox.messages.find((m) => m.includes("per-rcpt@test"))!.toString("latin1");
    // Dot-stuffing undone by Dovecot: the line starting with a dot arrives as sent.
    expect(got).toContain("\r\n.dot line\r\nbody\r\n");
  });

  peerTest([...haveDovecot], "a REQUIRETLS message is delivered into our own store (REQUIRETLS governs relaying, RFC 8689 §4)", async () => {
    const courier = new LmtpCourier({ target: `unix:${dovecot!.lmtpSocket}`, hostname: "mx.test", timeouts: FAST }, createBunDialer());
    try {
      const rs = [local("alice@example.test")];
      const m = message(rs, "requiretls-lmtp@test");
      m.envelope.requireTls = true;
      const [o] = await courier.deliver(m, rs);
      expect(`${o!.kind} ${o!.code}`).toBe("delivered 250");
    } finally {
      courier.close();
    }
  });

  peerTest([...haveDovecot], "five messages in a row share one connection (RSET between); a connection cut while idle is replaced", async () => {
    const r = await relay(dovecot!.lmtpPort);
    const courier = new LmtpCourier({ target: `127.0.0.1:${r.port}`, hostname: "mx.test", timeouts: FAST, idleMs: 5000 }, createBunDialer());
    try {
      for (let k = 0; k < 5; k++) {
        const rs = [local("bob@example.test")];
        const [o] = await courier.deliver(message(rs, `reuse-${k}@test`), rs);
        expect(o!.kind).toBe("delivered");
      }
      expect(r.connections()).toBe(1);
      r.cut();
      await new Promise((res) => setTimeout(res, 50));
      const rs = [local("bob@example.test")];
      const [o] = await courier.deliver(message(rs, "after-cut@test"), rs);
      expect(o!.kind).toBe("delivered");
      expect(r.connections()).toBe(2);
    } finally {
      courier.close();
      await r.close();
    }
  });

  peerTest([...haveDovecot], "every recipient refused at RCPT: each failed with its own 550, and the connection serves the next message", async () => {
    const r = await relay(dovecot!.lmtpPort);
    const courier = new LmtpCourier({ target: `127.0.0.1:${r.port}`, hostname: "mx.test", timeouts: FAST }, createBunDialer());
    try {
      const ghosts = [local("ghost1@example.test"), local("ghost2@example.test")];
      const out = await courier.deliver(message(ghosts, "ghosts@test"), ghosts);
      expect(out.map((o) => `${o.kind} ${o.code} ${o.enhanced}`)).toEqual(["failed 550 5.1.1", "failed 550 5.1.1"]);
      const rs = [local("bob@example.test")];
      const [o] = await courier.deliver(message(rs, "after-ghosts@test"), rs);
      expect(o!.kind).toBe("delivered");
      expect(r.connections()).toBe(1);
    } finally {
      courier.close();
      await r.close();
    }
  });

  peerTest([...haveDovecot], "nothing listening: every recipient deferred (451 4.4.1), nothing bounced", async () => {
    const courier = new LmtpCourier({ target: `unix:${dovecot!.dir}/absent.sock`, hostname: "mx.test", timeouts: FAST }, createBunDialer());
    const rs = [local("alice@example.test"), local("bob@example.test")];
    const out = await courier.deliver(message(rs, "down@test"), rs);
    expect(out.map((o) => `${o.kind} ${o.code} ${o.enhanced}`)).toEqual(["deferred 451 4.4.1", "deferred 451 4.4.1"]);
    expect(out[0]!.remoteMta).toBeUndefined();
    courier.close();
  });
});

/**
 * A scripted LMTP peer for what Dovecot will not do on demand: it answers LHLO, MAIL, each RCPT and DATA, then
 * after the final dot sends only `finals` (one reply per recipient, RFC 2033 §4.2) and closes.
 */
async function scripted(finals: string[]): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = createServer((c) => {
    c.write("220 lmtp.test LMTP\r\n");
    let buf = "";
    let data = false;
    c.on("data", (b: Buffer) => {
      buf += b.toString("latin1");
      for (;;) {
        if (data) {
          const end = buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          buf = buf.slice(end + 5);
          data = false;
          c.end(finals.map((f) => `${f}\r\n`).join(""));
          return;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.slice(0, nl).toUpperCase();
        buf = buf.slice(nl + 2);
        if (line.startsWith("LHLO")) c.write("250-lmtp.test\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
        else if (line.startsWith("DATA")) {
          c.write("354 go\r\n");
          data = true;
        } else c.write("250 2.0.0 ok\r\n");
      }
    });
    c.on("error", () => c.destroy());
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return { port: (srv.address() as { port: number }).port, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

describe("LmtpCourier: replies after the data", () => {
  test("the connection lost after the first of three replies: that one delivered, the others deferred (never failed)", async () => {
    const peer = await scripted(["250 2.0.0 <a@example.test> saved"]);
    const courier = new LmtpCourier({ target: `127.0.0.1:${peer.port}`, hostname: "mx.test", timeouts: FAST }, createBunDialer());
    const rs = [local("a@example.test"), local("b@example.test"), local("c@example.test")];
    const out = await courier.deliver(message(rs, "partial@test"), rs);
    expect(out.map((o) => `${o.kind} ${o.code}`)).toEqual(["delivered 250", "deferred 451", "deferred 451"]);
    expect(out[0]!.remoteMta).toBe("127.0.0.1");
    expect(out[1]!.remoteMta).toBeUndefined(); // no reply came: the outcome is ours
    courier.close();
    await peer.close();
  });

  test("each reply is its recipient's: 250, 452 (deferred), 552 (failed), in RCPT order", async () => {
    const peer = await scripted(["250 2.0.0 saved", "452 4.2.2 mailbox full", "552 5.2.2 over quota for good"]);
    const courier = new LmtpCourier({ target: `127.0.0.1:${peer.port}`, hostname: "mx.test", timeouts: FAST }, createBunDialer());
    const rs = [local("a@example.test"), local("b@example.test"), local("c@example.test")];
    const out = await courier.deliver(message(rs, "mixed@test"), rs);
    expect(out.map((o) => `${o.kind} ${o.code} ${o.enhanced} ${o.text}`)).toEqual([
      "delivered 250 2.0.0 saved",
      "deferred 452 4.2.2 mailbox full",
      "failed 552 5.2.2 over quota for good",
    ]);
    // LMTP delivery is final delivery: a 250 is never "relayed" (RFC 3461 §5.2.2), whatever the server offers.
    expect(out[0]!.relayed).toBeUndefined();
    courier.close();
    await peer.close();
  });
});
