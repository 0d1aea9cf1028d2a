/**
 * One SMTP client session on Bun.connect, sending messages back to back over one connection (RFC 5321 §3.3):
 * EHLO once, optionally STARTTLS (RFC 3207, certificate not verified) and AUTH PLAIN (RFC 4954), then
 * MAIL/RCPT/DATA per message without RSET. With PIPELINING (RFC 2920 §3.1) MAIL, the RCPTs and DATA go out in one
 * write; DATA is the last command of the group, so the content waits for the 354.
 *
 * The hot path is byte-only: commands are pre-built per run, the message is a pre-built template stamped in place,
 * replies are read as 3-digit codes (reply-scanner.ts). A write the kernel does not take whole is queued and
 * flushed on `drain` (Bun's write does not buffer).
 */
import type { Socket } from "bun";
import type { MessageTemplate } from "./message.ts";
import { ReplyScanner } from "./reply-scanner.ts";
import type { RunStats } from "./stats.ts";

const enc = new TextEncoder();

/** Commands shared by all sessions of a run (never mutated). */
export interface Commands {
  ehlo: Uint8Array;
  starttls: Uint8Array;
  auth: Uint8Array | null;
  mail: Uint8Array;
  rcpts: Uint8Array[];
  data: Uint8Array;
  /** MAIL + RCPTs + DATA in one buffer (PIPELINING). */
  group: Uint8Array;
  rset: Uint8Array;
  quit: Uint8Array;
}

export function buildCommands(o: {
  from: string;
  to: string;
  rcpts: number;
  auth: { user: string; pass: string } | null;
  maxSize: number;
}): Commands {
  const at = o.to.lastIndexOf("@");
  const local = o.to.slice(0, at);
  const domain = o.to.slice(at + 1);
  // Recipient k > 0 is local + k, so N recipients land in N mailboxes of a catch-all domain.
  const rcpts = Array.from({ length: o.rcpts }, (_, k) =>
    enc.encode(`RCPT TO:<${k === 0 ? o.to : `${local}${k}@${domain}`}>\r\n`),
  );
  const mail = enc.encode(`MAIL FROM:<${o.from}> SIZE=${o.maxSize}\r\n`);
  const data = enc.encode("DATA\r\n");
  const parts = [mail, ...rcpts, data];
  const group = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    group.set(p, off);
    off += p.length;
  }
  let auth: Uint8Array | null = null;
  if (o.auth) {
    // RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid.
    const plain = Buffer.from(`\0${o.auth.user}\0${o.auth.pass}`, "utf8").toString("base64");
    auth = enc.encode(`AUTH PLAIN ${plain}\r\n`);
  }
  return {
    ehlo: enc.encode("EHLO bench.ringmta\r\n"),
    starttls: enc.encode("STARTTLS\r\n"),
    auth,
    mail,
    rcpts,
    data,
    group,
    rset: enc.encode("RSET\r\n"),
    quit: enc.encode("QUIT\r\n"),
  };
}

/** What a session asks of its run. */
export interface SessionHost {
  readonly stats: RunStats;
  readonly cmds: Commands;
  readonly pipelining: boolean;
  readonly starttls: boolean;
  /** Hands out the next message number, or -1 when the run has no more work. */
  take(): number;
  /** Picks the template for message n of this session. */
  template(session: Session, n: number): MessageTemplate;
  onDone(s: Session): void;
}

const enum St {
  Connecting,
  Banner,
  Ehlo,
  StartTls,
  Handshake,
  EhloTls,
  Auth,
  Ready,
  Mail,
  Rcpt,
  Data,
  Body,
  Rset,
  Quit,
  Closed,
  /** Waiting to open a new connection after losing one. */
  Reconnecting,
}

/** Attempts to open a new connection after losing one, per session. */
const MAX_RECONNECTS = 3;

export class Session {
  private sock: Socket<Session> | null = null;
  /** Set once upgradeTLS ran: the raw socket's handlers then see ciphertext only. */
  upgraded = false;
  private st = St.Closed;
  private readonly scanner: ReplyScanner;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private t0 = 0;
  private mailOk = false;
  private rcptIdx = 0;
  private rcptOk = 0;
  private inMessage = false;
  private current: MessageTemplate | null = null;
  private reconnects = 0;
  private done = false;
  /** Templates per size class, built on first use by the host. */
  readonly templates: (MessageTemplate | null)[] = [];
  /** xorshift32 state for the size mix. */
  rand: number;

  constructor(
    readonly id: number,
    private readonly host: SessionHost,
    private readonly addr: { host: string; port: number },
  ) {
    this.scanner = new ReplyScanner((code) => this.onReply(code));
    this.rand = (id * 2654435761) >>> 0 || 1;
  }

  start(): void {
    if (this.done) return;
    this.st = St.Connecting;
    this.upgraded = false;
    this.queue = [];
    this.queued = 0;
    this.scanner.reset();
    this.t0 = performance.now();
    Bun.connect<Session>({
      hostname: this.addr.host,
      port: this.addr.port,
      data: this,
      socket: RAW_HANDLERS,
    }).catch((err: unknown) => {
      this.host.stats.noteError(`connect: ${(err as Error).message ?? String(err)}`);
      this.lost();
    });
  }

  /** Ends the session now (stall or shutdown); an unfinished message counts as failed. */
  abort(): void {
    if (this.done) return;
    this.reconnects = MAX_RECONNECTS;
    if (this.st === St.Reconnecting) return this.finish();
    const s = this.sock;
    if (s) s.terminate();
    else this.lost();
  }

  noteError(text: string): void {
    this.host.stats.noteError(text);
  }

  // ---- socket events ------------------------------------------------------------------------------------

  opened(s: Socket<Session>): void {
    if (this.done) {
      // Aborted while connecting.
      s.terminate();
      return;
    }
    this.sock = s;
    this.st = St.Banner;
  }

  input(chunk: Uint8Array): void {
    this.scanner.feed(chunk);
  }

  drained(): void {
    const s = this.sock;
    if (s === null) return;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = s.write(head);
      if (n <= 0) return;
      this.queued -= n;
      if (n < head.length) {
        this.queue[0] = head.subarray(n);
        return;
      }
      this.queue.shift();
    }
  }

  handshake(s: Socket<Session>, ok: boolean, err: Error | null): void {
    if (this.st !== St.Handshake) return;
    if (!ok) {
      this.host.stats.noteError(`TLS handshake failed: ${err?.message ?? "refused"}`);
      this.abort();
      return;
    }
    this.sock = s;
    this.st = St.EhloTls;
    this.scanner.startCapture();
    this.write(this.host.cmds.ehlo);
  }

  /** The socket closed (either side) or failed to connect. */
  lost(): void {
    if (this.done || this.st === St.Reconnecting) return;
    const stats = this.host.stats;
    const expected = this.st === St.Quit || this.st === St.Closed;
    this.sock = null;
    if (this.inMessage) {
      this.inMessage = false;
      stats.failed++;
    }
    if (expected) return this.finish();
    stats.connectionErrors++;
    if (this.reconnects < MAX_RECONNECTS) {
      this.reconnects++;
      this.st = St.Reconnecting;
      setTimeout(() => this.start(), 50 * this.reconnects);
      return;
    }
    this.finish();
  }

  // ---- protocol ---------------------------------------------------------------------------------------------

  private write(b: Uint8Array): void {
    const s = this.sock;
    if (s === null) return;
    if (this.queued > 0) {
      this.queue.push(b);
      this.queued += b.length;
      return;
    }
    const n = s.write(b);
    if (n < b.length) {
      const rest = n > 0 ? b.subarray(n) : b;
      this.queue.push(rest);
      this.queued += rest.length;
    }
  }

  private failSetup(code: number, what: string): void {
    const lines = this.scanner.stopCapture();
    this.host.stats.connectionErrors++;
    this.host.stats.noteError(`${what}: ${lines.length ? lines.join(" / ") : code}`);
    // A refused session is not retried: the same refusal would follow.
    this.reconnects = MAX_RECONNECTS;
    this.sendQuit();
  }

  private onReply(code: number): void {
    const stats = this.host.stats;
    stats.replies[code]++;
    const now = performance.now();
    stats.lastReplyAt = now;
    switch (this.st) {
      case St.Banner:
        stats.connect.record(now - this.t0);
        if (code !== 220) return this.failSetup(code, "banner");
        this.st = St.Ehlo;
        this.scanner.startCapture();
        return this.write(this.host.cmds.ehlo);
      case St.Ehlo:
      case St.EhloTls: {
        if (code !== 250) return this.failSetup(code, "EHLO");
        const caps = this.scanner.stopCapture().map((l) => l.slice(4).toUpperCase());
        if (this.st === St.Ehlo && this.host.starttls) {
          if (!caps.some((c) => c === "STARTTLS")) return this.failSetup(code, "EHLO does not offer STARTTLS");
          this.st = St.StartTls;
          this.scanner.startCapture();
          return this.write(this.host.cmds.starttls);
        }
        if (this.host.cmds.auth) {
          this.st = St.Auth;
          this.scanner.startCapture();
          return this.write(this.host.cmds.auth);
        }
        return this.ready();
      }
      case St.StartTls: {
        if (code !== 220) return this.failSetup(code, "STARTTLS");
        this.scanner.stopCapture();
        // RFC 3207 §4.2: nothing read before the handshake may be taken as a reply after it.
        this.scanner.reset();
        this.st = St.Handshake;
        this.upgraded = true;
        this.queue = [];
        this.queued = 0;
        const [, tls] = this.sock!.upgradeTLS<Session>({
          data: this,
          tls: { rejectUnauthorized: false },
          socket: TLS_HANDLERS,
        });
        this.sock = tls;
        return;
      }
      case St.Auth:
        if (code !== 235) return this.failSetup(code, "AUTH PLAIN");
        this.scanner.stopCapture();
        return this.ready();
      case St.Mail:
        stats.mail.record(now - this.t0);
        this.mailOk = code >= 200 && code < 300;
        if (!this.mailOk) stats.noteError(`MAIL: ${code}`);
        this.st = St.Rcpt;
        this.rcptIdx = 0;
        this.rcptOk = 0;
        if (this.host.pipelining) return;
        if (this.mailOk) return this.write(this.host.cmds.rcpts[0]!);
        return this.messageFailed();
      case St.Rcpt: {
        if (code >= 200 && code < 300) this.rcptOk++;
        else stats.noteError(`RCPT: ${code}`);
        const n = this.host.cmds.rcpts.length;
        if (++this.rcptIdx < n) {
          if (!this.host.pipelining) this.write(this.host.cmds.rcpts[this.rcptIdx]!);
          return;
        }
        this.st = St.Data;
        if (this.host.pipelining) return;
        if (this.rcptOk > 0) return this.write(this.host.cmds.data);
        return this.messageFailed();
      }
      case St.Data: {
        if (code !== 354) {
          stats.noteError(`DATA: ${code}`);
          return this.messageFailed();
        }
        this.st = St.Body;
        const bytes = this.current!.stamp(this.msgNo);
        this.t0 = performance.now();
        return this.write(bytes);
      }
      case St.Body:
        stats.data.record(now - this.t0);
        this.inMessage = false;
        if (code >= 200 && code < 300) {
          stats.accepted++;
          stats.bytes += this.current!.size;
          stats.deliveries += this.rcptOk;
          stats.lastAcceptAt = now;
        } else {
          stats.failed++;
          stats.noteError(`end of data: ${code}`);
        }
        return this.next();
      case St.Rset:
        return this.next();
      case St.Quit:
        this.st = St.Closed;
        this.sock?.end();
        return;
      default:
        return;
    }
  }

  private msgNo = 0;

  private ready(): void {
    this.reconnects = 0;
    this.st = St.Ready;
    this.next();
  }

  private next(): void {
    const n = this.host.take();
    if (n < 0) return this.sendQuit();
    this.msgNo = n;
    this.current = this.host.template(this, n);
    this.inMessage = true;
    this.host.stats.attempted++;
    this.st = St.Mail;
    this.t0 = performance.now();
    this.write(this.host.pipelining ? this.host.cmds.group : this.host.cmds.mail);
  }

  /** The transaction failed before its content was sent: reset it if MAIL was accepted, then go on. */
  private messageFailed(): void {
    this.inMessage = false;
    this.host.stats.failed++;
    if (this.mailOk) {
      this.st = St.Rset;
      return this.write(this.host.cmds.rset);
    }
    this.next();
  }

  private sendQuit(): void {
    if (this.sock === null) return this.finish();
    this.st = St.Quit;
    this.write(this.host.cmds.quit);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.st = St.Closed;
    this.host.onDone(this);
  }
}

const RAW_HANDLERS = {
  binaryType: "uint8array" as const,
  open(s: Socket<Session>) {
    s.data.opened(s);
  },
  data(s: Socket<Session>, chunk: Uint8Array) {
    const c = s.data;
    if (!c.upgraded) c.input(chunk);
  },
  drain(s: Socket<Session>) {
    const c = s.data;
    if (!c.upgraded) c.drained();
  },
  close(s: Socket<Session>) {
    const c = s.data;
    if (!c.upgraded) c.lost();
  },
  error(s: Socket<Session>, err: Error) {
    const c = s.data;
    if (c.upgraded) return;
    c.noteError(`socket: ${err.message}`);
  },
  connectError() {
    // Bun.connect rejects too; start() handles it there.
  },
};

const TLS_HANDLERS = {
  binaryType: "uint8array" as const,
  handshake(s: Socket<Session>, ok: boolean, err: Error | null) {
    s.data.handshake(s, ok, err);
  },
  data(s: Socket<Session>, chunk: Uint8Array) {
    s.data.input(chunk);
  },
  drain(s: Socket<Session>) {
    s.data.drained();
  },
  close(s: Socket<Session>) {
    s.data.lost();
  },
  error(s: Socket<Session>, err: Error) {
    s.data.noteError(`TLS socket: ${err.message}`);
  },
};
