/**
 * CONTRACT: listeners' proxy_protocol / proxy_from, the reply row "PROXY header missing, malformed, or from a peer
 * outside proxy_from → close without a banner", and the guarantee that the header's address is the client's for
 * every purpose. HAProxy (the real sender, send-proxy and send-proxy-v2) sits in front of the server; test
 * clients connect to it from 127.0.0.x addresses they choose, which HAProxy puts in the header. Raw sockets cover
 * what HAProxy never does: no header, a malformed one, one sent byte by byte, one that never completes.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { parse, stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  SmtpClient,
  findDelivered,
  peerPath,
  peerTest,
  readDelivered,
  sendMail,
  simpleMessage,
  sleep,
  startHaproxy,
  uniqueId,
  useServer,
  waitFor,
  type Haproxy,
} from "../helpers/index.ts";

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 PROXY header for TCP over IPv4 from `src`:`sport`. */
function v2Header(src: string, sport: number): Buffer {
  const body = Buffer.from([...src.split(".").map(Number), 127, 0, 0, 1, sport >> 8, sport & 0xff, 0, 25]);
  return Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0, body.length]), body]);
}

const v1Header = (src: string, sport = 40000): Buffer => Buffer.from(`PROXY TCP4 ${src} 127.0.0.1 ${sport} 25\r\n`);

interface Raw {
  sock: Socket;
  /** Everything the server sent so far. */
  received(): Buffer;
  /** Resolves with the ms from `since` to the server's close. */
  closedAfter(since: number, timeoutMs: number): Promise<number>;
}

function raw(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: "127.0.0.1", port });
    const got: Buffer[] = [];
    let closedAt = 0;
    const closed = new Promise<void>((r) => sock.once("close", () => ((closedAt = Date.now()), r())));
    sock.on("data", (b: Buffer) => got.push(b));
    sock.on("error", () => {});
    sock.once("connect", () =>
      resolve({
        sock,
        received: () => Buffer.concat(got),
        closedAfter: (since, timeoutMs) =>
          Promise.race([
            closed.then(() => closedAt - since),
            sleep(timeoutMs).then(() => {
              throw new Error(`still open after ${timeoutMs} ms`);
            }),
          ]),
      }),
    );
    sock.once("error", reject);
  });
}

/** Reads until `needle` arrives (the greeting, say). */
async function readUntil(r: Raw, needle: string, timeoutMs = 10_000): Promise<string> {
  return waitFor(() => {
    const t = r.received().toString("latin1");
    return t.includes(needle) ? t : "";
  }, timeoutMs);
}

describe("PROXY protocol (listeners lb, lbtls and far behind it; mx plain)", () => {
  const srv = useServer({
    listeners: [
      { name: "mx", tls: "starttls", auth: "optional" },
      { name: "lb", tls: "starttls", auth: "optional", proxy: {} },
      { name: "lbtls", tls: "implicit", auth: "required", proxy: {} },
      { name: "far", tls: "starttls", auth: "optional", proxy: { from: ["192.0.2.0/24"] } },
    ],
    config: [
      "[limits]",
      "max_connections_per_ip = 2",
      "auth_ip_delay_after = 2",
      "auth_ip_block_after = 2",
      'auth_ip_block = "1m"',
      "[relay]",
      'networks = ["127.0.0.66/32"]',
      "[relay.routes]",
      '"remote.test" = "127.0.0.1:9"',
    ].join("\n"),
  });

  test("a header sent byte by byte (v1 and v2) is read; the session then runs as the client it names", async () => {
    for (const header of [v1Header("127.0.0.31"), v2Header("127.0.0.32", 1234)]) {
      const r = await raw(srv().ports.lb);
      for (const b of header) {
        r.sock.write(Buffer.from([b]));
        await sleep(15);
      }
      expect(await readUntil(r, "\r\n")).toMatch(/^220 /);
      r.sock.write("EHLO bytewise.test\r\n");
      await readUntil(r, "250 ");
      r.sock.destroy();
    }
    await waitFor(() => srv().logs().includes("127.0.0.31") && srv().logs().includes("127.0.0.32"), 5000);
  });

  test("the proxied address decides relay.networks: 127.0.0.66 may relay, 127.0.0.67 may not", async () => {
    for (const [ip, code] of [
      ["127.0.0.66", 250],
      ["127.0.0.67", 554],
    ] as const) {
      const r = await raw(srv().ports.lb);
      r.sock.write(Buffer.concat([v1Header(ip), Buffer.from("EHLO relay.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<x@remote.test>\r\n")]));
      const text = await readUntil(r, `${code} `);
      expect(text.split("\r\n").filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3))).toEqual(["220", "250", "250", String(code)]);
      r.sock.destroy();
    }
  });

  test("no header (SMTP first) or a malformed one: closed at once, not one byte sent", async () => {
    for (const first of ["EHLO nohdr.test\r\n", "PROXY TCP4 127.0.0.1 127.0.0.1 040000 25\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"]) {
      const r = await raw(srv().ports.lb);
      const t0 = Date.now();
      r.sock.write(first);
      expect(await r.closedAfter(t0, 3000)).toBeLessThan(2000);
      expect(r.received().length).toBe(0);
    }
  });

  test("a peer outside proxy_from is closed at accept without a banner", async () => {
    const r = await raw(srv().ports.far);
    const t0 = Date.now();
    expect(await r.closedAfter(t0, 3000)).toBeLessThan(2000);
    expect(r.received().length).toBe(0);
    expect(srv().logs()).toMatch(/proxy\.refused.*peer outside proxy_from/);
  });

  test("a header that never completes is dropped after the 5 s limit, without a byte", async () => {
    const r = await raw(srv().ports.lb);
    const t0 = Date.now();
    r.sock.write("PROXY TCP4 127.0");
    const after = await r.closedAfter(t0, 9000);
    expect(after).toBeGreaterThanOrEqual(4500);
    expect(after).toBeLessThan(8000);
    expect(r.received().length).toBe(0);
  }, 15_000);

  test("implicit TLS: a v2 header in the same packet as the ClientHello still gives a TLS session as that client", async () => {
    const sock = netConnect({ host: "127.0.0.1", port: srv().ports.lbtls });
    await new Promise<void>((r) => sock.once("connect", () => r()));
    // The TLS client writes through this Duplex, whose first write carries the header and the ClientHello in one
    // socket write, so the server's first read holds both (HAProxy's MSG_MORE can do the same).
    let first = true;
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        sock.write(first ? Buffer.concat([v2Header("127.0.0.41", 4141), chunk]) : chunk, cb);
        first = false;
      },
    });
    sock.on("data", (b: Buffer) => wire.push(b));
    sock.on("close", () => wire.push(null));
    const tls = tlsConnect({ socket: wire as unknown as Socket, rejectUnauthorized: false, servername: "mx.test.ringmta" });
    await new Promise<void>((resolve, reject) => {
      tls.once("secureConnect", () => resolve());
      tls.once("error", reject);
    });
    let got = "";
    tls.on("data", (b: Buffer) => (got += b.toString()));
    await waitFor(() => got.includes("\r\n"), 10_000);
    expect(got).toMatch(/^220 /);
    tls.write("EHLO coalesced.test\r\n");
    await waitFor(() => got.includes("250 "), 10_000);
    expect(got).toContain("AUTH PLAIN LOGIN");
    tls.destroy();
    sock.destroy();
    await waitFor(() => /connection\.open[^\n]*127\.0\.0\.41/.test(srv().logs()), 5000);
  });

  describe("behind HAProxy", () => {
    let hap: Haproxy | null = null;
    const ports = { v1: 0, v2: 0, v2tls: 0 };
    beforeAll(async () => {
      if (peerPath("haproxy") === null) return;
      hap = await startHaproxy([
        { to: srv().ports.lb, proxy: "v1" },
        { to: srv().ports.lb, proxy: "v2" },
        { to: srv().ports.lbtls, proxy: "v2" },
      ]);
      [ports.v1, ports.v2, ports.v2tls] = hap.ports;
    }, 30_000);
    afterAll(async () => {
      await hap?.stop();
    });

    for (const [version, src] of [
      ["v1", "127.0.0.5"],
      ["v2", "127.0.0.6"],
    ] as const) {
      peerTest("haproxy", `send-proxy${version === "v2" ? "-v2" : ""}: Received names the client HAProxy saw (${src})`, async () => {
        const c = await SmtpClient.connect(ports[version], { localAddress: src });
        await c.hello(`${version}.client.test`);
        const mid = uniqueId(`proxy-${version}`);
        const r = await sendMail(c, "sender@remote.test", ["bob@example.test"], simpleMessage({ messageId: mid }));
        expect(r.final?.code).toBe(250);
        await c.cmd("QUIT");
        c.destroy();
        const file = await waitFor(() => findDelivered(srv().dataDir, "bob@example.test", `<${mid}>`)[0], 15_000);
        const received = readDelivered(file).trace.received;
        expect(received).toContain(`[${src}]`);
        expect(received).not.toContain("[127.0.0.1]");
      });
    }

    peerTest("haproxy", "max_connections_per_ip counts the proxied address: a third from 127.0.0.7 gets 421, 127.0.0.8 still gets 220", async () => {
      const open: SmtpClient[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const c = await SmtpClient.connect(ports.v2, { localAddress: "127.0.0.7" });
          open.push(c);
          expect((await c.readReply()).code).toBe(220);
        }
        const third = await SmtpClient.connect(ports.v2, { localAddress: "127.0.0.7" });
        open.push(third);
        const r = await third.readReply();
        expect([r.code, r.enhanced]).toEqual([421, "4.7.0"]);
        const other = await SmtpClient.connect(ports.v1, { localAddress: "127.0.0.8" });
        open.push(other);
        expect((await other.readReply()).code).toBe(220);
      } finally {
        for (const c of open) c.destroy();
      }
    });

    peerTest("haproxy", "a 190 kB message over implicit TLS through HAProxy arrives intact (the TLS tunnel's flow control)", async () => {
      const c = await SmtpClient.connect(ports.v2tls, { tls: true, localAddress: "127.0.0.12" });
      await c.hello("big.client.test");
      const auth = await c.cmd(`AUTH PLAIN ${Buffer.from("\0alice@example.test\0secret-alice").toString("base64")}`);
      expect(auth.code).toBe(235);
      const mid = uniqueId("proxy-big");
      const lines = Array.from({ length: 1900 }, (_, i) => `${String(i).padStart(5, "0")} ${"z".repeat(92)}`);
      const msg = simpleMessage({ from: "alice@example.test", messageId: mid, lines });
      const r = await sendMail(c, "alice@example.test", ["bob@example.test"], msg);
      expect(r.final?.code).toBe(250);
      c.destroy();
      const file = await waitFor(() => findDelivered(srv().dataDir, "bob@example.test", `<${mid}>`)[0], 15_000);
      const got = readDelivered(file);
      expect(got.body.equals(msg)).toBe(true);
      expect(got.trace.received).toContain("[127.0.0.12]");
    }, 30_000);

    peerTest("haproxy", "AUTH brute-force records are kept per proxied address: 127.0.0.50 is blocked after 2 failures, 127.0.0.51 is not", async () => {
      const plain = (pass: string): string => Buffer.from(`\0alice@example.test\0${pass}`).toString("base64");
      const attempt = async (from: string, pass: string): Promise<string> => {
        const c = await SmtpClient.connect(ports.v2tls, { tls: true, localAddress: from });
        try {
          await c.hello("auth.client.test");
          const r = await c.cmd(`AUTH PLAIN ${plain(pass)}`, 30_000);
          return `${r.code} ${r.enhanced}`;
        } finally {
          c.destroy();
        }
      };
      expect(await attempt("127.0.0.50", "wrong-1")).toBe("535 5.7.8");
      expect(await attempt("127.0.0.50", "wrong-2")).toBe("535 5.7.8");
      expect(await attempt("127.0.0.50", "secret-alice")).toBe("454 4.7.0");
      // Same real peer (HAProxy on 127.0.0.1), another client: not affected.
      expect(await attempt("127.0.0.51", "secret-alice")).toBe("235 2.7.0");
    }, 30_000);

    peerTest(["haproxy", "python3"], "implicit TLS through HAProxy (send-proxy-v2, TLS passed through): Python smtplib.SMTP_SSL from 127.0.0.9", async () => {
      const mid = uniqueId("proxy-tls");
      const script = [
        "import smtplib, ssl, sys",
        "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE",
        `s = smtplib.SMTP_SSL("127.0.0.1", ${ports.v2tls}, source_address=("127.0.0.9", 0), context=ctx, timeout=20)`,
        's.ehlo("tls.client.test")',
        's.login("alice@example.test", "secret-alice")',
        `msg = "From: <alice@example.test>\\r\\nTo: <bob@example.test>\\r\\nSubject: via haproxy\\r\\nMessage-ID: <${mid}>\\r\\n\\r\\nhello\\r\\n"`,
        's.sendmail("alice@example.test", ["bob@example.test"], msg)',
        "print(s.sock.version())",
        "s.quit()",
      ].join("\n");
      const r = spawnSync(peerPath("python3")!, ["-c", script], { encoding: "utf8", timeout: 30_000 });
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toMatch(/^TLSv1\.[23]$/);
      const file = await waitFor(() => findDelivered(srv().dataDir, "bob@example.test", `<${mid}>`)[0], 15_000);
      const received = readDelivered(file).trace.received;
      expect(received).toContain("[127.0.0.9]");
      expect(received).toMatch(/ with ESMTPSA /); // TLS and AUTH on the tunnelled session (RFC 3848)
    }, 40_000);
  });
});

describe("SIGHUP re-reads proxy_from", () => {
  const srv = useServer({
    listeners: [
      { name: "mx", tls: "starttls", auth: "optional" },
      { name: "lb", tls: "none", auth: "off", proxy: { from: ["192.0.2.0/24"] } },
    ],
  });

  test("127.0.0.1 refused while outside proxy_from; after it is added and SIGHUP, its header is read", async () => {
    const first = await raw(srv().ports.lb);
    await first.closedAfter(Date.now(), 3000);
    expect(first.received().length).toBe(0);

    const cfg = parse(readFileSync(srv().configPath, "utf8")) as { listeners: Array<Record<string, unknown>> };
    cfg.listeners.find((l) => l.name === "lb")!.proxy_from = ["192.0.2.0/24", "127.0.0.1"];
    writeFileSync(srv().configPath, stringify(cfg) + "\n");
    const before = srv().logs().split("config.reloaded").length;
    process.kill(srv().pid, "SIGHUP");
    await waitFor(() => srv().logs().split("config.reloaded").length > before, 10_000);

    const r = await raw(srv().ports.lb);
    r.sock.write(v1Header("127.0.0.88"));
    expect(await readUntil(r, "\r\n")).toMatch(/^220 /);
    r.sock.destroy();
  });
});
