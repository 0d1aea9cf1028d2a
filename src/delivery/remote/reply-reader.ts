/**
 * Reads SMTP replies (RFC 5321 §4.2) from a client connection: "NNN-text" lines continue a reply, "NNN text" (or a
 * bare "NNN") ends it. Replies are queued in order so that pipelined commands (RFC 2920) are matched to theirs;
 * each wait has its own timer (RFC 5321 §4.5.3.2). The connection's drain and close events are surfaced too.
 */
import type { ConnHandler } from "../../transport/types.ts";

export interface SmtpReply {
  code: number;
  /** Each line's text after "NNN-" / "NNN ". */
  lines: string[];
}

/** A temporary condition of the connection itself (closed, timed out, garbage): the attempt is deferred. */
export class ConnectionError extends Error {}

/** Replies are a few lines; a server that sends 64 KiB without a line end is broken. */
const MAX_PENDING = 64 * 1024;
const LF = 10;
const utf8 = new TextDecoder("utf-8");

/** "550 5.1.1 text" + continuation texts: one line, never a CR or LF. */
export function replyText(r: SmtpReply): string {
  return `${r.code} ${r.lines.join(" ")}`.replace(/[\r\n]+/g, " ").trim();
}

export class ReplyReader implements ConnHandler {
  private pending: Uint8Array | null = null;
  private lines: string[] = [];
  private ready: SmtpReply[] = [];
  private waiter: { resolve(r: SmtpReply): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> } | null = null;
  private drainWaiter: (() => void) | null = null;
  private failure: Error | null = null;
  closed = false;

  onData(chunk: Uint8Array): void {
    if (this.failure !== null) return;
    let buf = chunk;
    if (this.pending !== null) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending, 0);
      buf.set(chunk, this.pending.length);
      this.pending = null;
    }
    let start = 0;
    for (;;) {
      const lf = buf.indexOf(LF, start);
      if (lf < 0) break;
      const end = lf > start && buf[lf - 1] === 13 ? lf - 1 : lf;
      this.line(utf8.decode(buf.subarray(start, end)));
      start = lf + 1;
      if (this.failure !== null) return;
    }
    if (start < buf.length) {
      if (buf.length - start > MAX_PENDING) return this.fail(new ConnectionError("reply line too long"));
      this.pending = buf.slice(start);
    }
  }

  onDrain(): void {
    const w = this.drainWaiter;
    this.drainWaiter = null;
    w?.();
  }

  onClose(): void {
    this.closed = true;
    this.fail(new ConnectionError("connection closed by the server"));
  }

  /** Clear what is buffered (after STARTTLS: nothing sent before the handshake may be read after it, RFC 3207 §4.2). */
  reset(): void {
    this.pending = null;
    this.lines = [];
    this.ready = [];
  }

  /** The next reply, or a ConnectionError after `timeoutMs`, on close, or on a malformed reply. */
  next(timeoutMs: number, what: string): Promise<SmtpReply> {
    const r = this.ready.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<SmtpReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.fail(new ConnectionError(`timeout after ${Math.round(timeoutMs / 1000)} s waiting for the reply to ${what}`));
        reject(this.failure!);
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Resolves on the connection's next drain event (rejects on close or after `timeoutMs`). */
  drained(timeoutMs: number): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.drainWaiter = null;
        this.fail(new ConnectionError(`timeout after ${Math.round(timeoutMs / 1000)} s sending the message data`));
        reject(this.failure!);
      }, timeoutMs);
      this.drainWaiter = () => {
        clearTimeout(timer);
        if (this.failure !== null) reject(this.failure);
        else resolve();
      };
    });
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  private line(text: string): void {
    const code = text.length >= 3 ? Number(text.slice(0, 3)) : NaN;
    const sep = text.length > 3 ? text[3] : " ";
    if (!Number.isInteger(code) || code < 200 || code > 599 || (sep !== " " && sep !== "-")) {
      this.fail(new ConnectionError(`malformed reply line: ${text.slice(0, 80)}`));
      return;
    }
    this.lines.push(text.slice(4));
    if (sep === "-") return;
    const reply: SmtpReply = { code, lines: this.lines };
    this.lines = [];
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(reply);
    } else {
      this.ready.push(reply);
    }
  }

  private fail(e: Error): void {
    if (this.failure === null) this.failure = e;
    const w = this.waiter;
    this.waiter = null;
    if (w !== null) {
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
    this.onDrain();
  }
}
