/**
 * The node:net / node:tls adapter against the Conn and Dialer contracts of transport/types.ts, with real sockets
 * and a real certificate. vitest runs it on Bun (the adapter uses node: modules only); test/deno/ runs the whole
 * server on Deno itself.
 */
import { connect as netConnect, createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { generateCertificate, type PemPair } from "../../certs/index.ts";
import { Duplex } from "node:stream";
import type { Conn, ConnHandler, Listener, ListenerSpec, Preface, PrefaceVerdict } from "../types.ts";
import { createDenoDialer, createDenoTransport } from "./index.ts";

let pem: PemPair;
const open: Array<{ stop(): void } | Listener> = [];
beforeAll(async () => {
  pem = await generateCertificate({ host: "mx.transport.test", local: true });
});
afterAll(() => {
  for (const l of open) l.stop();
});

const enc = new TextEncoder();
const spec = (implicitTls = false): ListenerSpec => ({ name: "t", host: "127.0.0.1", port: 0, implicitTls, backlog: 1024 });

interface Seen {
  conn: Conn;
  data: Buffer[];
  drains: number;
  closed: boolean;
}

/** A listener whose sessions record what they see; `onConn` may act on each new connection. */
async function listen(
  implicitTls: boolean,
  onConn?: (s: Seen) => ConnHandler | void,
  preface?: Preface,
): Promise<{ l: Listener; seen: Seen[] }> {
  const seen: Seen[] = [];
  const l = await createDenoTransport().listen({ ...spec(implicitTls), ...(preface ? { preface } : {}) }, () => pem, (conn) => {
    const s: Seen = { conn, data: [], drains: 0, closed: false };
    seen.push(s);
    const base: ConnHandler = {
      onData: (c) => s.data.push(Buffer.from(c)),
      onDrain: () => s.drains++,
      onClose: () => (s.closed = true),
    };
    const custom = onConn?.(s);
    return custom ? { ...base, ...custom, onClose: () => ((s.closed = true), custom.onClose()) } : base;
  });
  open.push(l);
  return { l, seen };
}

async function until(f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function plainClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

describe("createDenoTransport", () => {
  test("listen resolves with the bound port; the adapter reads the certificate per handshake", async () => {
    const { l } = await listen(false);
    expect(l.port).toBeGreaterThan(0);
    expect(createDenoTransport().tlsPerConnection).toBe(true);
  });

  test("a second listener on a bound port rejects with EADDRINUSE", async () => {
    const { l } = await listen(false);
    await expect(
      Promise.resolve(createDenoTransport().listen({ ...spec(), port: l.port }, () => null, () => ({ onData() {}, onDrain() {}, onClose() {} }))),
    ).rejects.toThrow(/EADDRINUSE/);
  });

  test("data reaches the session; remote and local addresses are plain IPv4", async () => {
    const { l, seen } = await listen(false);
    const c = await plainClient(l.port);
    c.write("EHLO x\r\n");
    await until(() => seen[0]?.data.length > 0);
    expect(Buffer.concat(seen[0]!.data).toString()).toBe("EHLO x\r\n");
    expect(seen[0]!.conn.remoteAddress).toBe("127.0.0.1");
    expect(seen[0]!.conn.localPort).toBe(l.port);
    expect(seen[0]!.conn.tls).toBeNull();
    c.destroy();
    await until(() => seen[0]!.closed);
  });

  test("write never drops: 16 MiB to a client that does not read queue up, drain fires, all arrive in order", async () => {
    const { l, seen } = await listen(false);
    const c = await plainClient(l.port);
    c.pause();
    await until(() => seen.length === 1);
    const conn = seen[0]!.conn;
    const block = new Uint8Array(64 * 1024);
    // A fresh buffer per write: the Conn keeps references to what it queues (zero-copy), as the seam allows.
    for (let i = 0; i < 256; i++) conn.write(new Uint8Array(block.length).fill(i % 251));
    expect(conn.pendingWrite).toBeGreaterThan(0);
    const got: Buffer[] = [];
    c.on("data", (d: Buffer) => got.push(d));
    c.resume();
    await until(() => got.reduce((n, b) => n + b.length, 0) === 256 * block.length, 20_000);
    const all = Buffer.concat(got);
    for (let i = 0; i < 256; i++) expect(all[i * block.length + 100]).toBe(i % 251);
    await until(() => seen[0]!.drains > 0);
    expect(conn.pendingWrite).toBe(0);
    c.destroy();
  });

  test("pause stops data events until resume", async () => {
    const { l, seen } = await listen(false);
    const c = await plainClient(l.port);
    await until(() => seen.length === 1);
    seen[0]!.conn.pause();
    c.write("NOOP\r\n");
    await new Promise((r) => setTimeout(r, 200));
    expect(seen[0]!.data.length).toBe(0);
    seen[0]!.conn.resume();
    await until(() => seen[0]!.data.length > 0);
    c.destroy();
  });

  test("end flushes what is queued, then closes", async () => {
    const { l, seen } = await listen(false);
    const c = await plainClient(l.port);
    await until(() => seen.length === 1);
    seen[0]!.conn.write(enc.encode("221 bye\r\n"));
    seen[0]!.conn.end();
    const got = await new Promise<string>((r) => {
      let s = "";
      c.on("data", (d: Buffer) => (s += d.toString()));
      c.on("end", () => r(s));
    });
    expect(got).toBe("221 bye\r\n");
    await until(() => seen[0]!.closed);
  });

  test("STARTTLS: 220 in plaintext, then a TLS 1.2+ handshake, then decrypted data both ways", async () => {
    let info: unknown = null;
    const { l, seen } = await listen(false, (s) => ({
      onData: (c) => {
        s.data.push(Buffer.from(c));
        if (s.conn.tls === null && Buffer.from(c).toString() === "STARTTLS\r\n") {
          s.conn.write(enc.encode("220 2.0.0 go ahead\r\n"));
          void s.conn.startTls().then((i) => (info = i));
        } else if (s.conn.tls !== null) {
          s.conn.write(enc.encode("250 secure\r\n"));
        }
      },
      onDrain: () => {},
      onClose: () => {},
    }));
    const raw = await plainClient(l.port);
    raw.write("STARTTLS\r\n");
    await new Promise<void>((r) => raw.once("data", () => r()));
    const ts: TLSSocket = await new Promise((resolve, reject) => {
      const t = tlsConnect({ socket: raw, rejectUnauthorized: false }, () => resolve(t));
      t.once("error", reject);
    });
    // Sent at once, before the server has seen its handshake end: it must still arrive (not be dropped).
    ts.write("EHLO after\r\n");
    const reply = await new Promise<string>((r) => ts.once("data", (d: Buffer) => r(d.toString())));
    expect(reply).toBe("250 secure\r\n");
    expect(info).toMatchObject({ version: expect.stringMatching(/^TLSv1\.[23]$/) });
    expect(seen[0]!.conn.tls?.version).toMatch(/^TLSv1\.[23]$/);
    expect(Buffer.concat(seen[0]!.data).toString()).toBe("STARTTLS\r\nEHLO after\r\n");
    ts.destroy();
  });

  test("implicit TLS: the session starts after the handshake; TLS 1.1 is refused", async () => {
    const { l, seen } = await listen(true, (s) => {
      s.conn.write(enc.encode("220 hello\r\n"));
    });
    const ts: TLSSocket = await new Promise((resolve, reject) => {
      const t = tlsConnect({ host: "127.0.0.1", port: l.port, rejectUnauthorized: false }, () => resolve(t));
      t.once("error", reject);
    });
    const greeting = await new Promise<string>((r) => ts.once("data", (d: Buffer) => r(d.toString())));
    expect(greeting).toBe("220 hello\r\n");
    expect(seen[0]!.conn.tls?.version).toMatch(/^TLSv1\.[23]$/);
    ts.destroy();

    const old = await new Promise<string>((resolve) => {
      const t = tlsConnect({ host: "127.0.0.1", port: l.port, rejectUnauthorized: false, maxVersion: "TLSv1.1", minVersion: "TLSv1" }, () =>
        resolve("connected"),
      );
      t.on("error", (e) => resolve(String(e)));
    });
    expect(old).not.toBe("connected");
    expect(seen.length).toBe(1);
  });
});

/**
 * A preface of the seam (the PROXY header is one, built in app/): a line "as ADDR" names the client, "real" keeps
 * the peer, anything else closes; peers other than `allow` are refused at accept.
 */
function linePreface(timeoutMs: number, log: string[], allow = "127.0.0.1"): Preface {
  return {
    timeoutMs,
    open(peer) {
      if (peer !== allow) return null;
      let line = "";
      return {
        push(chunk): PrefaceVerdict {
          for (let i = 0; i < chunk.length; i++) {
            if (chunk[i] !== 10) {
              line += String.fromCharCode(chunk[i]!);
              continue;
            }
            const rest = chunk.subarray(i + 1);
            if (line === "real") return { kind: "done", peer: null, rest };
            if (line.startsWith("as ")) return { kind: "done", peer: { address: line.slice(3), port: 4242 }, rest };
            return { kind: "close" };
          }
          return { kind: "more" };
        },
        timedOut: () => log.push("timeout"),
      };
    },
  };
}

describe("createDenoTransport with a preface", () => {
  test("read before the session: the named client becomes remoteAddress; the bytes after it reach the session", async () => {
    const { l, seen } = await listen(false, (s) => s.conn.write(enc.encode("220 hi\r\n")), linePreface(5000, []));
    const c = await plainClient(l.port);
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString()));
    c.write("as 192.0.2");
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(0);
    c.write(".7\nEHLO x\r\n");
    await until(() => seen.length === 1 && Buffer.concat(seen[0]!.data).toString() === "EHLO x\r\n");
    expect([seen[0]!.conn.remoteAddress, seen[0]!.conn.remotePort]).toEqual(["192.0.2.7", 4242]);
    await until(() => got === "220 hi\r\n");
    c.destroy();
  });

  test("refused at accept, refused by the reader, or late: closed without a session and without a byte", async () => {
    const log: string[] = [];
    const refusing = await listen(false, undefined, linePreface(5000, log, "192.0.2.1"));
    const bad = await listen(false, undefined, linePreface(5000, log));
    const slow = await listen(false, undefined, linePreface(300, log));
    for (const [port, send] of [
      [refusing.l.port, ""],
      [bad.l.port, "nonsense\n"],
      [slow.l.port, "as 1.2"],
    ] as const) {
      const c = await plainClient(port);
      let got = 0;
      c.on("data", (d: Buffer) => (got += d.length));
      if (send) c.write(send);
      await new Promise<void>((r) => c.once("close", () => r()));
      expect(got).toBe(0);
    }
    expect(refusing.seen.length + bad.seen.length + slow.seen.length).toBe(0);
    expect(log).toEqual(["timeout"]);
  });

  test("implicit TLS after the preface, with the ClientHello in the same write as the preface", async () => {
    const { l, seen } = await listen(true, (s) => s.conn.write(enc.encode("220 tls\r\n")), linePreface(5000, []));
    const raw = await plainClient(l.port);
    let first = true;
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(first ? Buffer.concat([Buffer.from("as 192.0.2.8\n"), chunk]) : chunk, cb);
        first = false;
      },
    });
    raw.on("data", (b: Buffer) => wire.push(b));
    const ts: TLSSocket = await new Promise((resolve, reject) => {
      const t = tlsConnect({ socket: wire as unknown as Socket, rejectUnauthorized: false }, () => resolve(t));
      t.once("error", reject);
    });
    const greeting = await new Promise<string>((r) => ts.once("data", (d: Buffer) => r(d.toString())));
    expect(greeting).toBe("220 tls\r\n");
    expect(seen[0]!.conn.tls?.version).toMatch(/^TLSv1\.[23]$/);
    expect(seen[0]!.conn.remoteAddress).toBe("192.0.2.8");
    ts.write("EHLO y\r\n");
    await until(() => Buffer.concat(seen[0]!.data).toString() === "EHLO y\r\n");
    ts.destroy();
    raw.destroy();
  });
});

describe("createDenoDialer", () => {
  /** A plain server that answers 220, offers STARTTLS, and upgrades with the test certificate. */
  async function starttlsPeer(): Promise<number> {
    const { l } = await listen(false, (s) => {
      s.conn.write(enc.encode("220 peer\r\n"));
      return {
        onData: (c) => {
          const line = Buffer.from(c).toString();
          if (line === "STARTTLS\r\n") {
            s.conn.write(enc.encode("220 go\r\n"));
            // A client that refuses our certificate fails the handshake here; the session's own handler would close.
            s.conn.startTls().catch(() => s.conn.end());
          } else s.conn.write(enc.encode(`250 ${s.conn.tls ? "tls" : "plain"} ${line}`));
        },
        onDrain: () => {},
        onClose: () => {},
      };
    });
    return l.port;
  }

  function reader(conn: { setHandler(h: ConnHandler): void }): () => Promise<string> {
    const queue: string[] = [];
    let wake: (() => void) | null = null;
    conn.setHandler({
      onData: (c) => {
        queue.push(Buffer.from(c).toString());
        wake?.();
      },
      onDrain: () => {},
      onClose: () => {},
    });
    return async () => {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      return queue.shift()!;
    };
  }

  test("connect, STARTTLS without verification, talk over TLS", async () => {
    const port = await starttlsPeer();
    const conn = await createDenoDialer().connect({ host: "127.0.0.1", port, timeoutMs: 5000 });
    const next = reader(conn);
    expect(await next()).toBe("220 peer\r\n");
    conn.write(enc.encode("STARTTLS\r\n"));
    expect(await next()).toBe("220 go\r\n");
    const info = await conn.startTls({ servername: "mx.transport.test", verify: false });
    expect(info.version).toMatch(/^TLSv1\.[23]$/);
    conn.write(enc.encode("EHLO me\r\n"));
    expect(await next()).toBe("250 tls EHLO me\r\n");
    conn.destroy();
  });

  test("STARTTLS with verification: the test CA is trusted when given, refused when not", async () => {
    const port = await starttlsPeer();
    for (const ca of [pem.cert, undefined]) {
      const conn = await createDenoDialer().connect({ host: "127.0.0.1", port, timeoutMs: 5000 });
      const next = reader(conn);
      await next();
      conn.write(enc.encode("STARTTLS\r\n"));
      await next();
      const r = conn.startTls({ servername: "mx.transport.test", verify: true, ...(ca ? { ca } : {}) });
      if (ca) await expect(r).resolves.toMatchObject({ version: expect.stringMatching(/^TLSv1\.[23]$/) });
      else await expect(r).rejects.toThrow();
      conn.destroy();
    }
  });

  test("implicit TLS dial gets TLS info at once; a refused port rejects", async () => {
    const { l } = await listen(true, (s) => {
      s.conn.write(enc.encode("220 tls peer\r\n"));
    });
    const conn = await createDenoDialer().connect({
      host: "127.0.0.1",
      port: l.port,
      timeoutMs: 5000,
      tls: { servername: "mx.transport.test", verify: true, ca: pem.cert },
    });
    expect(conn.tls?.version).toMatch(/^TLSv1\.[23]$/);
    expect(await reader(conn)()).toBe("220 tls peer\r\n");
    conn.destroy();

    const free = createServer();
    await new Promise<void>((r) => free.listen(0, "127.0.0.1", r));
    const port = (free.address() as AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    await expect(createDenoDialer().connect({ host: "127.0.0.1", port, timeoutMs: 5000 })).rejects.toThrow(/ECONNREFUSED/);
  });
});
