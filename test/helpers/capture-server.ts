/**
 * A tiny SMTP server for tests of the outbound client (node:net, optional STARTTLS through node:tls): it records
 * every command line and each message's envelope and data exactly (DATA dot-unstuffed, BDAT raw), and answers from
 * per-verb scripts — e.g. `script: { RCPT: ["451 4.3.0 try later", "451 4.3.0 try later"] }` answers 451 to the first
 * two RCPTs and the default 250 afterwards. Commands are handled strictly in order, so pipelined batches work.
 */
import { createServer, type Server, type Socket } from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";

export type Verb = "GREETING" | "EHLO" | "HELO" | "STARTTLS" | "AUTH" | "MAIL" | "RCPT" | "DATA" | "DOT" | "BDAT" | "RSET" | "QUIT";

export interface CaptureOptions {
  /** EHLO keywords after the greeting line; default PIPELINING, SIZE 10000000, 8BITMIME, SMTPUTF8, DSN, ENHANCEDSTATUSCODES. */
  ehlo?: string[];
  /** Replies to use first, per verb; once a list is empty the default reply is used. */
  script?: Partial<Record<Verb, string[]>>;
  /** STARTTLS with this certificate (offered in EHLO before TLS). */
  tls?: { cert: string; key: string };
  /** AUTH PLAIN/LOGIN accepted for these credentials (offered in EHLO, after TLS when tls is set). */
  auth?: { user: string; password: string };
  /** Delay before each reply to this verb, in ms (slow servers). */
  delayMs?: Partial<Record<Verb, number>>;
  host?: string;
}

export interface CapturedMessage {
  helo: string;
  /** The argument of MAIL FROM as sent, e.g. "<a@b> BODY=8BITMIME SIZE=10". */
  mailFrom: string;
  /** The arguments of the accepted RCPT TO lines. */
  rcptTo: string[];
  /** The message as transferred: dot-unstuffed DATA, or the BDAT bytes. */
  data: Buffer;
  via: "DATA" | "BDAT";
  tls: boolean;
  authUser: string | null;
  connection: number;
}

const DEFAULT_EHLO = ["PIPELINING", "SIZE 10000000", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"];

export class CaptureServer {
  readonly messages: CapturedMessage[] = [];
  /** Every command line received, in order, with the connection number: "1 MAIL FROM:<a@b>". */
  readonly lines: string[] = [];
  connections = 0;
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly scripts: Partial<Record<Verb, string[]>>;

  constructor(private readonly opts: CaptureOptions = {}) {
    this.scripts = Object.fromEntries(Object.entries(opts.script ?? {}).map(([k, v]) => [k, [...(v ?? [])]]));
  }

  static async start(opts: CaptureOptions = {}, port = 0): Promise<CaptureServer> {
    const c = new CaptureServer(opts);
    await c.listen(port);
    return c;
  }

  /** Queue more scripted replies for a verb. */
  script(verb: Verb, replies: string[]): void {
    (this.scripts[verb] ??= []).push(...replies);
  }

  private listen(port: number): Promise<void> {
    this.server = createServer((s) => this.session(s));
    return new Promise((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, this.opts.host ?? "127.0.0.1", () => {
        this.port = (this.server!.address() as { port: number }).port;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private reply(verb: Verb, fallback: string): string {
    const list = this.scripts[verb];
    return list !== undefined && list.length > 0 ? list.shift()! : fallback;
  }

  private session(raw: Socket): void {
    const n = ++this.connections;
    this.sockets.add(raw);
    raw.on("close", () => this.sockets.delete(raw));
    raw.on("error", () => {});
    let sock: Socket = raw;
    let buf: Buffer = Buffer.alloc(0);
    let tls = false;
    let helo = "";
    let authUser: string | null = null;
    let mail: string | null = null;
    let rcpts: string[] = [];
    let mode: "cmd" | "data" | "bdat" | "login-user" | "login-pass" | "closed" = "cmd";
    let bdatLeft = 0;
    let bdatLast = false;
    const bdatParts: Buffer[] = [];
    let loginUser = "";
    let busy = Promise.resolve();

    const send = async (verb: Verb, text: string): Promise<void> => {
      const d = this.opts.delayMs?.[verb];
      if (d) await new Promise((r) => setTimeout(r, d));
      if (!sock.destroyed) sock.write(text.endsWith("\r\n") ? text : `${text}\r\n`);
    };
    const ehloLines = (): string[] => {
      const kw = [...(this.opts.ehlo ?? DEFAULT_EHLO)];
      if (this.opts.tls && !tls) kw.push("STARTTLS");
      if (this.opts.auth && (tls || !this.opts.tls) && !kw.some((k) => k.startsWith("AUTH"))) kw.push("AUTH PLAIN LOGIN");
      return kw;
    };
    const store = (data: Buffer, via: "DATA" | "BDAT"): void => {
      this.messages.push({ helo, mailFrom: mail ?? "", rcptTo: rcpts, data, via, tls, authUser, connection: n });
    };
    const reset = (): void => {
      mail = null;
      rcpts = [];
    };

    const command = async (line: string): Promise<void> => {
      this.lines.push(`${n} ${line}`);
      if (mode === "login-user") {
        loginUser = Buffer.from(line, "base64").toString();
        mode = "login-pass";
        return send("AUTH", "334 UGFzc3dvcmQ6");
      }
      if (mode === "login-pass") {
        mode = "cmd";
        const ok = loginUser === this.opts.auth?.user && Buffer.from(line, "base64").toString() === this.opts.auth?.password;
        if (ok) authUser = loginUser;
        return send("AUTH", ok ? "235 2.7.0 ok" : "535 5.7.8 bad credentials");
      }
      const verb = line.slice(0, 4).toUpperCase();
      const arg = line.slice(line.indexOf(":") + 1);
      switch (verb) {
        case "EHLO": {
          helo = line.slice(5);
          const r = this.reply("EHLO", "");
          if (r) return send("EHLO", r);
          const kw = ehloLines();
          return send("EHLO", ["250-capture.test", ...kw.slice(0, -1).map((k) => `250-${k}`), `250 ${kw[kw.length - 1] ?? "ok"}`].join("\r\n"));
        }
        case "HELO":
          helo = line.slice(5);
          return send("HELO", this.reply("HELO", "250 capture.test"));
        case "STAR": {
          const r = this.reply("STARTTLS", "220 2.0.0 go ahead");
          await send("STARTTLS", r);
          if (!r.startsWith("220") || !this.opts.tls) return;
          raw.removeAllListeners("data");
          buf = Buffer.alloc(0); // RFC 3207 §4.2: nothing sent before the handshake counts
          const t = new TLSSocket(raw, { isServer: true, secureContext: createSecureContext({ ...this.opts.tls, minVersion: "TLSv1.2" }) });
          t.on("error", () => {});
          t.on("data", onData);
          sock = t;
          tls = true;
          helo = "";
          reset();
          return;
        }
        case "AUTH": {
          const parts = line.split(" ");
          const mech = (parts[1] ?? "").toUpperCase();
          if (mech === "PLAIN" && parts[2]) {
            const [, user, pass] = Buffer.from(parts[2], "base64").toString().split("\0");
            const ok = user === this.opts.auth?.user && pass === this.opts.auth?.password;
            if (ok) authUser = user;
            return send("AUTH", ok ? "235 2.7.0 ok" : "535 5.7.8 bad credentials");
          }
          if (mech === "LOGIN") {
            mode = "login-user";
            return send("AUTH", "334 VXNlcm5hbWU6");
          }
          return send("AUTH", "504 5.5.4 unknown mechanism");
        }
        case "MAIL": {
          const r = this.reply("MAIL", "250 2.1.0 ok");
          if (r.startsWith("250")) mail = arg;
          return send("MAIL", r);
        }
        case "RCPT": {
          if (mail === null) return send("RCPT", "503 5.5.1 need MAIL");
          const r = this.reply("RCPT", "250 2.1.5 ok");
          if (r.startsWith("25")) rcpts.push(arg);
          return send("RCPT", r);
        }
        case "DATA": {
          if (mail === null || rcpts.length === 0) return send("DATA", "554 5.5.1 no valid recipients");
          const r = this.reply("DATA", "354 go ahead");
          if (r.startsWith("354")) mode = "data";
          return send("DATA", r);
        }
        case "BDAT": {
          const m = /^BDAT (\d+)( LAST)?$/i.exec(line);
          if (!m) return send("BDAT", "501 5.5.4 syntax");
          bdatLeft = Number(m[1]);
          bdatLast = m[2] !== undefined;
          mode = "bdat";
          return;
        }
        case "RSET":
          reset();
          return send("RSET", this.reply("RSET", "250 2.0.0 ok"));
        case "QUIT":
          await send("QUIT", "221 2.0.0 bye");
          mode = "closed";
          sock.end();
          return;
        case "NOOP":
          return send("RSET", "250 2.0.0 ok");
        default:
          return send("RSET", "500 5.5.2 unknown command");
      }
    };

    const unstuff = (data: Buffer): Buffer => {
      // data ends with "\r\n.\r\n" minus the final ".\r\n"; lines starting ".." lose one dot (RFC 5321 §4.5.2).
      const out: number[] = [];
      let lineStart = true;
      for (let i = 0; i < data.length; i++) {
        if (lineStart && data[i] === 0x2e) {
          lineStart = false;
          continue;
        }
        out.push(data[i]);
        lineStart = data[i] === 0x0a;
      }
      return Buffer.from(out);
    };

    const pump = async (): Promise<void> => {
      for (;;) {
        if (mode === "closed") return;
        if (mode === "data") {
          const end = buf[0] === 0x2e && buf[1] === 0x0d && buf[2] === 0x0a ? 0 : buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          const body = end === 0 ? Buffer.alloc(0) : buf.subarray(0, end + 2);
          buf = buf.subarray(end === 0 ? 3 : end + 5);
          mode = "cmd";
          const r = this.reply("DOT", "250 2.0.0 queued as CAPTURED");
          if (r.startsWith("250")) store(unstuff(body), "DATA");
          reset();
          await send("DOT", r);
          continue;
        }
        if (mode === "bdat") {
          if (buf.length < bdatLeft) return;
          bdatParts.push(buf.subarray(0, bdatLeft));
          buf = buf.subarray(bdatLeft);
          mode = "cmd";
          if (!bdatLast) {
            await send("BDAT", "250 2.0.0 chunk ok");
            continue;
          }
          const r = this.reply("BDAT", "250 2.0.0 queued as CAPTURED");
          if (r.startsWith("250")) store(Buffer.concat(bdatParts), "BDAT");
          bdatParts.length = 0;
          reset();
          await send("BDAT", r);
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString("utf8");
        buf = buf.subarray(nl + 2);
        await command(line);
      }
    };

    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      busy = busy.then(pump);
    };
    raw.on("data", onData);
    busy = busy.then(() => send("GREETING", this.reply("GREETING", "220 capture.test ESMTP")));
  }
}
