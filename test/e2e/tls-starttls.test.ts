/**
 * STARTTLS (RFC 3207) and implicit TLS (RFC 8314) at the protocol level: AUTH only under TLS (CONTRACT
 * "Guarantees"), STARTTLS out of sequence, the state reset of RFC 3207 §4.2, and the CVE-2011-0411 class of
 * command injection (bytes pipelined after STARTTLS must be discarded, not run after the handshake).
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { describe, expect, test } from "vitest";
import { SmtpClient, sleep, useServer } from "../helpers/index.ts";

const srv = useServer();

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const hasAuth = (lines: string[]): boolean => lines.some((l) => /^AUTH\b/i.test(l));

/**
 * A bare socket that writes exactly what it is given, in one write, and reads replies (RFC 5321 §4.2.1
 * multi-line) — so a test controls what arrives together with STARTTLS, which SmtpClient.startTls() does not.
 */
class Wire {
  buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;

  constructor(public sock: Socket) {
    this.attach(sock);
  }

  static open(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ host: "127.0.0.1", port });
      s.once("connect", () => resolve(new Wire(s)));
      s.once("error", reject);
    });
  }

  private attach(s: Socket): void {
    s.on("data", (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      this.wake?.();
    });
    s.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
    s.on("error", () => undefined);
  }

  /** The next complete reply, raw; rejects on timeout or close. */
  async reply(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.buf.toString("latin1");
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\n/.exec(text);
      if (m) {
        this.buf = this.buf.subarray(m[0].length);
        return m[0];
      }
      if (this.closed) throw new Error(`closed; pending ${JSON.stringify(text)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; pending ${JSON.stringify(text)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = null;
    }
  }

  async cmd(line: string): Promise<string> {
    this.sock.write(line + "\r\n");
    return this.reply();
  }

  /** TLS client handshake over the same TCP connection (self-signed certificate accepted). */
  async handshake(): Promise<TLSSocket> {
    const plain = this.sock;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false });
      s.once("secureConnect", () => resolve(s));
      s.once("error", reject);
    });
    this.sock = secure;
    this.buf = Buffer.alloc(0);
    this.attach(secure);
    return secure;
  }
}

describe("AUTH only under TLS", () => {
  for (const name of ["mx", "submission"] as const) {
    test(`${name}: EHLO before STARTTLS lists STARTTLS and no AUTH; after STARTTLS, AUTH PLAIN LOGIN and no STARTTLS`, async () => {
      const c = await SmtpClient.connect(srv().ports[name]);
      const before = await c.hello();
      expect(before.code).toBe(250);
      expect(before.lines).toContain("STARTTLS");
      expect(hasAuth(before.lines), before.raw).toBe(false);
      expect((await c.startTls()).code).toBe(220);
      const after = await c.cmd("EHLO client.test");
      expect(after.lines).toContain("AUTH PLAIN LOGIN");
      expect(after.lines).not.toContain("STARTTLS");
      c.destroy();
    });

    test(`${name}: AUTH PLAIN with an initial response on plaintext is refused (538 5.7.11 or 530 5.7.0)`, async () => {
      const c = await SmtpClient.connect(srv().ports[name]);
      await c.hello();
      const r = await c.cmd(`AUTH PLAIN ${b64("\0alice@example.test\0secret-alice")}`);
      expect(["538 5.7.11", "530 5.7.0"]).toContain(`${r.code} ${r.enhanced}`);
      // Not authenticated: submission still wants AUTH before MAIL.
      if (name === "submission") expect((await c.cmd("MAIL FROM:<alice@example.test>")).code).toBe(530);
      const l = await c.cmd("AUTH LOGIN");
      expect([538, 530]).toContain(l.code);
      c.destroy();
    });
  }

  test("submissions (implicit TLS): EHLO lists AUTH PLAIN LOGIN and no STARTTLS", async () => {
    const c = await SmtpClient.connect(srv().ports.submissions, { tls: true });
    const e = await c.hello();
    expect(e.lines).toContain("AUTH PLAIN LOGIN");
    expect(e.lines).not.toContain("STARTTLS");
    c.destroy();
  });
});

describe("STARTTLS out of sequence", () => {
  test("a second STARTTLS after the handshake gets 503 5.5.1 and the session goes on", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    expect((await c.cmd("EHLO client.test")).code).toBe(250);
    const r = await c.cmd("STARTTLS");
    expect([r.code, r.enhanced]).toEqual([503, "5.5.1"]);
    expect((await c.cmd("NOOP")).code).toBe(250);
    c.destroy();
  });

  test("STARTTLS on the implicit-TLS listener gets 503 5.5.1", async () => {
    const c = await SmtpClient.connect(srv().ports.submissions, { tls: true });
    await c.hello();
    const r = await c.cmd("STARTTLS");
    expect([r.code, r.enhanced]).toEqual([503, "5.5.1"]);
    expect((await c.cmd("NOOP")).code).toBe(250);
    c.destroy();
  });

  test("RFC 3207 §4.2: after the handshake the server forgets EHLO (MAIL before a new EHLO → 503)", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    const m = await c.cmd("MAIL FROM:<sender@remote.test>");
    expect([m.code, m.enhanced]).toEqual([503, "5.5.1"]);
    expect((await c.cmd("EHLO client.test")).code).toBe(250);
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    c.destroy();
  });

  test("RFC 3207 §4.2: a MAIL transaction begun before STARTTLS is gone after it", async () => {
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.cmd("MAIL FROM:<sender@remote.test>")).code).toBe(250);
    // RFC 3207 §4: STARTTLS in a transaction may be refused; if it is accepted, the transaction must not survive.
    const st = await c.startTls();
    if (st.code !== 220) {
      expect(st.code).toBe(503);
      c.destroy();
      return;
    }
    expect((await c.cmd("EHLO client.test")).code).toBe(250);
    const r = await c.cmd("RCPT TO:<bob@example.test>");
    expect([r.code, r.enhanced]).toEqual([503, "5.5.1"]);
    c.destroy();
  });
});

describe("STARTTLS command injection (CVE-2011-0411)", () => {
  const injections: Array<[string, string]> = [
    ["RSET", "RSET"],
    ["MAIL FROM", "MAIL FROM:<a@b.test>"],
  ];
  for (const [label, injected] of injections) {
    test(`STARTTLS\\r\\n${label}… in one write: after the handshake the first reply is to our own command`, async () => {
      const w = await Wire.open(srv().ports.mx);
      expect(await w.reply()).toMatch(/^220 /);
      expect(await w.cmd("EHLO client.test")).toMatch(/^250[ -]/);
      w.sock.write(`STARTTLS\r\n${injected}\r\n`);
      expect(await w.reply()).toMatch(/^220 /);
      // Nothing follows the 220 in plaintext (a reply there would also break the handshake).
      await sleep(100);
      expect(w.buf.toString("latin1")).toBe("");
      const secure = await w.handshake();
      expect(secure.getProtocol()).toMatch(/^TLSv1\.[23]$/);
      // EHLO's reply is multi-line and names us; a reply to the injected RSET/MAIL would be one line.
      const first = await w.cmd("EHLO after.test");
      expect(first).toMatch(/^250-\S+ Hello after\.test\r\n/);
      // Had the injected MAIL run, this MAIL would be a nested 503.
      expect(await w.cmd("MAIL FROM:<sender@remote.test>")).toMatch(/^250 /);
      expect(await w.cmd("NOOP")).toMatch(/^250 /);
      await sleep(300);
      expect(w.buf.toString("latin1"), "no late reply to the injected command").toBe("");
      w.sock.destroy();
    });
  }
});

describe("failed handshakes do not hurt the server", () => {
  test("a plaintext client on the implicit-TLS port gets no SMTP greeting and is closed; the port keeps working", async () => {
    const w = await Wire.open(srv().ports.submissions);
    w.sock.write("EHLO plain.test\r\n");
    await expect(w.reply(5000)).rejects.toThrow();
    expect(w.buf.toString("latin1")).not.toMatch(/^220 /);
    w.sock.destroy();
    const c = await SmtpClient.connect(srv().ports.submissions, { tls: true });
    expect((await c.hello()).code).toBe(250);
    c.destroy();
  });

  test("garbage instead of a ClientHello after STARTTLS closes that connection only", async () => {
    const w = await Wire.open(srv().ports.mx);
    await w.reply();
    await w.cmd("EHLO client.test");
    expect(await w.cmd("STARTTLS")).toMatch(/^220 /);
    w.sock.write("this is not TLS\r\nMAIL FROM:<a@b.test>\r\n");
    await new Promise<void>((resolve) => (w.closed ? resolve() : w.sock.once("close", () => resolve())));
    expect(w.buf.toString("latin1")).not.toMatch(/^250/m);
    const c = await SmtpClient.connect(srv().ports.mx);
    await c.hello();
    expect((await c.startTls()).code).toBe(220);
    expect((await c.cmd("EHLO client.test")).code).toBe(250);
    c.destroy();
  });
});

describe("failed handshakes are not counted as open connections", () => {
  const small = useServer({ config: "[limits]\nmax_connections_per_ip = 3\n" });

  test("10 aborted STARTTLS handshakes and 10 plaintext hellos to the implicit port, then 3 sessions still fit", async () => {
    for (let i = 0; i < 10; i++) {
      const w = await Wire.open(small().ports.mx);
      await w.reply();
      await w.cmd("EHLO client.test");
      expect(await w.cmd("STARTTLS")).toMatch(/^220 /);
      w.sock.write("\x16\x03\x01\x00\x05hello");
      await new Promise<void>((resolve) => (w.closed ? resolve() : w.sock.once("close", () => resolve())));
      const v = await Wire.open(small().ports.submissions);
      v.sock.write("EHLO plain.test\r\n");
      await new Promise<void>((resolve) => (v.closed ? resolve() : v.sock.once("close", () => resolve())));
    }
    const open: SmtpClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await SmtpClient.connect(small().ports.mx);
      const g = await c.readReply();
      expect(g.code, `session ${i + 1}: ${g.raw}`).toBe(220);
      open.push(c);
    }
    for (const c of open) c.destroy();
  });
});
