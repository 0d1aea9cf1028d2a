/**
 * A raw SMTP client over node:net / node:tls for outside-in tests: it sends exactly the bytes it is given and
 * parses replies per RFC 5321 §4.2 (multi-line replies: "250-..." continues, "250 ..." ends).
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";

export interface Reply {
  code: number;
  /** RFC 3463 enhanced status code of the first line ("2.1.0"), or null when absent. */
  enhanced: string | null;
  /** The text of each line after "NNN-" / "NNN ". */
  lines: string[];
  /** Everything as received, for messages in failed assertions. */
  raw: string;
}

export interface ConnectOptions {
  host?: string;
  localAddress?: string;
  /** Implicit TLS (RFC 8314): handshake first; self-signed test certificates are accepted. */
  tls?: boolean;
  timeoutMs?: number;
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/;
const DEFAULT_TIMEOUT = 15_000;

export class SmtpClient {
  private socket: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private closedPromise: Promise<void>;
  private isClosed = false;
  private error: Error | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.closedPromise = new Promise((resolve) => socket.once("close", () => resolve()));
    this.attach(socket);
  }

  /** Connect to 127.0.0.1:port (or opts.host). Does not read the greeting: call readReply() for the 220. */
  static connect(port: number, opts: ConnectOptions = {}): Promise<SmtpClient> {
    const host = opts.host ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      const socket: Socket = opts.tls
        ? tlsConnect({ host, port, rejectUnauthorized: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) } as ConnectionOptions)
        : netConnect({ host, port, localAddress: opts.localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, opts.timeoutMs ?? DEFAULT_TIMEOUT);
      socket.once(opts.tls ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        socket.removeListener("error", onError);
        resolve(new SmtpClient(socket));
      });
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once("error", onError);
    });
  }

  private attach(socket: Socket): void {
    socket.on("data", (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.wake();
    });
    socket.on("error", (err) => {
      this.error = err;
      this.wake();
    });
    socket.on("close", () => {
      this.isClosed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitForInput(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  get closedYet(): boolean {
    return this.isClosed;
  }

  /** The TLS protocol version once TLS is up ("TLSv1.3"), else null. */
  get tlsVersion(): string | null {
    const s = this.socket as Partial<TLSSocket>;
    return typeof s.getProtocol === "function" ? (s.getProtocol() ?? null) : null;
  }

  /** Bytes received and not yet consumed by readReply(). */
  get pending(): Buffer {
    return this.buf;
  }

  /** Write bytes as given; resolves once the socket has taken them (honours backpressure via 'drain'). */
  send(bytes: string | Uint8Array): Promise<void> {
    const data = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) {
        reject(new Error("send on a closed connection"));
        return;
      }
      const ok = this.socket.write(data, (err) => {
        if (err) reject(err);
      });
      if (ok) resolve();
      else this.socket.once("drain", () => resolve());
    });
  }

  /** Read one complete (possibly multi-line) reply. Rejects on timeout or when the server closes first. */
  async readReply(timeoutMs = DEFAULT_TIMEOUT): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.takeReply();
      if (reply) return reply;
      if (this.isClosed || this.error) {
        throw new Error(
          `connection closed before a complete reply (${this.error?.message ?? "EOF"}); pending: ${JSON.stringify(this.buf.toString("latin1"))}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.waitForInput(left))) {
        throw new Error(`no complete reply within ${timeoutMs} ms; pending: ${JSON.stringify(this.buf.toString("latin1"))}`);
      }
    }
  }

  private takeReply(): Reply | null {
    let start = 0;
    const lines: string[] = [];
    let code = 0;
    for (;;) {
      const nl = this.buf.indexOf(10, start);
      if (nl < 0) return null;
      const end = nl > start && this.buf[nl - 1] === 13 ? nl - 1 : nl;
      const line = this.buf.toString("utf8", start, end);
      start = nl + 1;
      const m = /^(\d{3})([ -]|$)(.*)$/s.exec(line);
      if (!m) throw new Error(`malformed reply line: ${JSON.stringify(line)}`);
      code = Number(m[1]);
      lines.push(m[3]);
      if (m[2] !== "-") break;
    }
    const raw = this.buf.toString("utf8", 0, start);
    this.buf = this.buf.subarray(start);
    const e = ENHANCED.exec(lines[0]);
    return { code, enhanced: e ? e[1] : null, lines, raw };
  }

  /** Send one command line (CRLF appended) and read its reply. */
  async cmd(line: string, timeoutMs = DEFAULT_TIMEOUT): Promise<Reply> {
    await this.send(line + "\r\n");
    return this.readReply(timeoutMs);
  }

  /** Read the greeting and say EHLO; returns the EHLO reply. */
  async hello(name = "client.test"): Promise<Reply> {
    const greet = await this.readReply();
    if (greet.code !== 220) throw new Error(`expected 220 greeting, got ${greet.raw}`);
    return this.cmd(`EHLO ${name}`);
  }

  /**
   * RFC 3207 STARTTLS: sends the command, expects 220, then runs the TLS handshake on the same socket
   * (self-signed certificates accepted). Returns the 220 reply.
   */
  async startTls(): Promise<Reply> {
    const r = await this.cmd("STARTTLS");
    if (r.code !== 220) return r;
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("error");
    plain.removeAllListeners("close");
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false });
      s.once("secureConnect", () => resolve(s));
      s.once("error", reject);
    });
    this.socket = secure;
    this.buf = Buffer.alloc(0);
    this.closedPromise = new Promise((resolve) => secure.once("close", () => resolve()));
    this.attach(secure);
    return r;
  }

  /** Resolves when the server has closed the connection (or rejects after timeoutMs). */
  closed(timeoutMs = DEFAULT_TIMEOUT): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.socket.resume();
      this.closedPromise.then(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Half-close our side (FIN) after what was written. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** RFC 5321 §4.5.2 transparency: a line starting with "." gets another "." in front. Expects CRLF lines. */
export function dotStuff(message: Uint8Array): Buffer {
  const src = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const parts: Buffer[] = [];
  let lineStart = 0;
  let from = 0;
  while (lineStart < src.length) {
    if (src[lineStart] === 0x2e) {
      parts.push(src.subarray(from, lineStart), Buffer.from("."));
      from = lineStart;
    }
    const nl = src.indexOf(10, lineStart);
    if (nl < 0) break;
    lineStart = nl + 1;
  }
  parts.push(src.subarray(from));
  return Buffer.concat(parts);
}

/** The DATA payload for `message`: dot-stuffed, CRLF-terminated, followed by the end-of-data ".\r\n". */
export function dataPayload(message: Uint8Array): Buffer {
  const stuffed = dotStuff(message);
  const endsWithCrlf = stuffed.length >= 2 && stuffed[stuffed.length - 2] === 13 && stuffed[stuffed.length - 1] === 10;
  return Buffer.concat([stuffed, Buffer.from(endsWithCrlf ? ".\r\n" : "\r\n.\r\n")]);
}

export interface SendResult {
  mail: Reply;
  rcpts: Reply[];
  data: Reply | null;
  final: Reply | null;
}

/**
 * One transaction, command by command (no pipelining): MAIL, RCPTs, DATA, the message dot-stuffed, the dot.
 * Stops early when MAIL fails, no RCPT succeeds, or DATA is not 354.
 */
export async function sendMail(
  c: SmtpClient,
  from: string,
  to: string[],
  message: Uint8Array | string,
  mailParams = "",
): Promise<SendResult> {
  const mail = await c.cmd(`MAIL FROM:<${from}>${mailParams ? " " + mailParams : ""}`);
  const rcpts: Reply[] = [];
  if (mail.code !== 250) return { mail, rcpts, data: null, final: null };
  for (const r of to) rcpts.push(await c.cmd(`RCPT TO:<${r}>`));
  if (!rcpts.some((r) => r.code === 250)) return { mail, rcpts, data: null, final: null };
  const data = await c.cmd("DATA");
  if (data.code !== 354) return { mail, rcpts, data, final: null };
  await c.send(dataPayload(typeof message === "string" ? Buffer.from(message, "utf8") : message));
  return { mail, rcpts, data, final: await c.readReply(60_000) };
}
