/**
 * The LMTP courier (RFC 2033): local recipients handed to a mailbox server such as Dovecot over a Unix-domain socket
 * or TCP, chosen with `local.delivery = "lmtp"` (CONTRACT "[local]"). It speaks through the SMTP client of
 * delivery/remote in its LMTP mode (LHLO; after the data one reply per recipient accepted at RCPT, §4.2), so the
 * reply reader, dot-stuffing, pipelining and timeouts are the ones remote delivery uses.
 *
 * Each recipient's outcome is its own reply: a refused RCPT, or its reply after the data (2xx delivered, 4xx
 * deferred, 5xx failed and bounced by the queue). The message goes as stored — the prepended fields, our Received,
 * the body: the LMTP server writes its own Return-Path and Delivered-To (Dovecot does), so none are added here.
 * An envelope folder (Maildir++ `.Junk`) has no LMTP form; the server's own rules (Sieve) file the message.
 *
 * Not exactly once: after a lost reply to the final dot the server may have delivered, and nothing can be asked
 * afterwards; a retry can make a second copy, never a loss (as with remote SMTP, RFC 5321 §6.1).
 *
 * Connections: at most `maxConnections` per worker; a finished one waits `idleMs` for the next message and is
 * probed with RSET before reuse (RFC 5321 §4.1.1.5); one found dead is replaced by a fresh connection once.
 */
import type { Dialer } from "../../transport/types.ts";
import { localOutcome } from "../../mail/index.ts";
import type { Courier, DeliveryAttempt, EnvelopeRecipient, Outcome, StoredMessage } from "../../mail/index.ts";
import { RFC5321_TIMEOUTS, SessionError, SmtpSession, StaleConnectionError, splitHostPort } from "../remote/index.ts";
import type { RemoteTimeouts, SessionOptions, SessionTarget } from "../remote/index.ts";

/** Plain data (crosses into a worker with postMessage). */
export interface LmtpSettings {
  /** `local.lmtp`: "unix:/absolute/path" or "host:port". */
  target: string;
  /** Our name in LHLO. */
  hostname: string;
  timeouts?: RemoteTimeouts;
  /** Connections per worker; default 4. */
  maxConnections?: number;
  /** How long a finished connection waits for the next message; default 5 s. */
  idleMs?: number;
}

/** "unix:/path" → a socket path; "host:port" (or "[v6]:port") → TCP; anything else: null. */
export function parseLmtpTarget(s: string): SessionTarget | null {
  if (s.startsWith("unix:")) {
    const path = s.slice(5);
    return path.startsWith("/") ? { address: "", port: 0, name: "localhost", unix: path } : null;
  }
  const hp = splitHostPort(s);
  return hp === null ? null : { address: hp.host, port: hp.port, name: hp.host };
}

export class LmtpCourier implements Courier {
  readonly name = "lmtp";
  /** A second LMTP transaction is a second copy in the mailbox: outcomes are recorded at once. */
  readonly exactlyOnce = false;
  private readonly target: SessionTarget | null;
  private readonly opts: SessionOptions;
  private readonly max: number;
  private readonly idleMs: number;
  private active = 0;
  private readonly idle: Array<{ s: SmtpSession; timer: ReturnType<typeof setTimeout> }> = [];
  private readonly waiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly s: LmtpSettings,
    private readonly dialer: Dialer,
  ) {
    this.target = parseLmtpTarget(s.target);
    this.opts = { helo: s.hostname, tls: "none", verify: false, timeouts: s.timeouts ?? RFC5321_TIMEOUTS, lmtp: true };
    this.max = Math.max(1, s.maxConnections ?? 4);
    this.idleMs = s.idleMs ?? 5000;
  }

  async deliver(message: StoredMessage, recipients: EnvelopeRecipient[], attempt: DeliveryAttempt = {}): Promise<Outcome[]> {
    const out: Array<Outcome | null> = recipients.map((r) =>
      r.route.kind === "local" ? null : localOutcome("failed", 554, "5.3.5", `${r.address} is not a local mailbox`),
    );
    const send: number[] = [];
    out.forEach((o, k) => o === null && send.push(k));
    if (send.length > 0) {
      const got = await this.transaction(message, send.map((k) => recipients[k]));
      send.forEach((k, j) => (out[k] = got[j]));
    }
    const outcomes = out as Outcome[];
    if (attempt.report !== undefined) await attempt.report(recipients.map((_, k) => k), outcomes);
    return outcomes;
  }

  /** QUIT the idle connections (worker shutdown, or a reload that replaced this courier). */
  close(): void {
    this.closed = true;
    for (const { s, timer } of this.idle.splice(0)) {
      clearTimeout(timer);
      s.quit();
    }
  }

  private async transaction(message: StoredMessage, rcpts: EnvelopeRecipient[]): Promise<Outcome[]> {
    const all = (o: Outcome): Outcome[] => rcpts.map(() => o);
    if (this.target === null) {
      // config/ refuses such a value; a courier built by hand with one defers rather than guesses.
      return all(localOutcome("deferred", 451, "4.3.5", `local.lmtp ${JSON.stringify(this.s.target)} is not usable`));
    }
    await this.acquire();
    let session: SmtpSession | null = null;
    try {
      for (let attempt = 0; ; attempt++) {
        const idle = attempt === 0 ? this.idle.pop() : undefined;
        if (idle !== undefined) {
          clearTimeout(idle.timer);
          session = idle.s;
        } else {
          try {
            session = await SmtpSession.open(this.dialer, this.target, this.opts);
          } catch (err) {
            // Connect refused or timed out, or a refusing greeting/LHLO: every recipient waits for a retry.
            if (err instanceof SessionError) return all(deferredOnly(err.outcome));
            throw err;
          }
        }
        try {
          return await session.send(message, rcpts);
        } catch (err) {
          // Only a reused connection that died while idle gets here; nothing was sent: a fresh one, once.
          if (!(err instanceof StaleConnectionError) || attempt > 0) throw err;
          session = null;
        }
      }
    } catch (err) {
      session?.close();
      session = null;
      return all(localOutcome("deferred", 451, "4.3.0", `LMTP delivery error: ${String(err)}`));
    } finally {
      this.release(session);
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    // A slot frees as soon as a transaction ends (LMTP is local and answers in milliseconds), so wait for it.
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(session: SmtpSession | null): void {
    if (session !== null && session.usable && !session.reader.failed && !this.closed) {
      const entry = {
        s: session,
        timer: setTimeout(() => {
          const i = this.idle.indexOf(entry);
          if (i >= 0) this.idle.splice(i, 1);
          session.quit();
        }, this.idleMs),
      };
      this.idle.push(entry);
    } else {
      session?.close();
    }
    const w = this.waiters.shift();
    if (w !== undefined) w(); // the slot passes straight to the waiter
    else this.active--;
  }
}

/**
 * A connection that could not be set up is never a reason to bounce: even a 5xx greeting or LHLO refusal is the
 * mailbox server's state (starting, misconfigured), so the recipients are retried.
 */
function deferredOnly(o: Outcome): Outcome {
  return o.kind === "failed" ? { ...o, kind: "deferred", code: 451, enhanced: "4.4.0", text: `${o.code} ${o.text}` } : o;
}
