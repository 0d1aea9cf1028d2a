/**
 * One outbound SMTP connection (RFC 5321) and the transactions sent over it: greeting, EHLO (HELO fallback,
 * §4.1.1.1), STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954), then per message MAIL/RCPT/DATA, pipelined when the
 * server offers PIPELINING (RFC 2920), or MAIL/RCPT/BDAT for BODY=BINARYMIME (RFC 3030). Every wait has the
 * RFC 5321 §4.5.3.2 timeout given by the caller. Outcomes are per recipient: RCPT replies are per recipient, the
 * reply to the data applies to all recipients accepted.
 *
 * The same client speaks LMTP (RFC 2033) when `SessionOptions.lmtp` is set: LHLO instead of EHLO (§4.1, no HELO
 * fallback), and after the data one reply per recipient accepted at RCPT, in RCPT order (§4.2), each that
 * recipient's outcome. A target may be a Unix-domain socket (`SessionTarget.unix`).
 */
import { DotStuffer, encodeBase64, encodeXtext } from "../../protocol/index.ts";
import type { ClientConn, Dialer } from "../../transport/types.ts";
import { kindOfCode, localOutcome, replyLine } from "../../mail/index.ts";
import type { EnvelopeRecipient, Outcome, StoredMessage } from "../../mail/index.ts";
import { mailboxText } from "../../mail/index.ts";
import type { TlsaRecord } from "../../dns/index.ts";
import { daneVerify } from "./dane.ts";
import { ConnectionError, ReplyReader, replyText } from "./reply-reader.ts";
import type { SmtpReply } from "./reply-reader.ts";

/** RFC 5321 §4.5.3.2 timeouts, in ms (app/ passes the RFC values; tests shorten them). */
export interface RemoteTimeouts {
  /** TCP connect (and the TLS handshake of implicit TLS); the RFC leaves it to the implementation. */
  connectMs: number;
  /** Initial 220: 5 min. */
  greetingMs: number;
  /** EHLO, STARTTLS, AUTH, RSET, QUIT (the RFC's MAIL value): 5 min. */
  commandMs: number;
  /** MAIL: 5 min. */
  mailMs: number;
  /** RCPT: 5 min. */
  rcptMs: number;
  /** DATA initiation (the 354): 2 min. */
  dataInitMs: number;
  /** Each data block sent (here: each wait for the socket to drain): 3 min. */
  dataBlockMs: number;
  /** DATA termination (the reply to the final dot or BDAT LAST): 10 min. */
  dataEndMs: number;
}

export const RFC5321_TIMEOUTS: RemoteTimeouts = {
  connectMs: 30_000,
  greetingMs: 300_000,
  commandMs: 300_000,
  mailMs: 300_000,
  rcptMs: 300_000,
  dataInitMs: 120_000,
  dataBlockMs: 180_000,
  dataEndMs: 600_000,
};

export type ClientTlsPolicy = "none" | "opportunistic" | "required" | "implicit";

export interface SessionTarget {
  /** What to connect to (an IP address, or a name the system resolves). */
  address: string;
  port: number;
  /** The host name: TLS server name, Remote-MTA of DSNs, logs. */
  name: string;
  /** Connect to this Unix-domain socket path instead of address:port (LMTP). */
  unix?: string;
}

export interface SessionOptions {
  helo: string;
  tls: ClientTlsPolicy;
  /** Verify the certificate (chain and name) when TLS is used. */
  verify: boolean;
  ca?: string;
  auth?: { user: string; password: string };
  timeouts: RemoteTimeouts;
  /**
   * The authenticated-TLS policy that demands TLS here (CONTRACT "Outbound TLS policy"): a missing STARTTLS or a
   * failed check is then a 4.7.5 deferral naming it. "dane": the certificate must match `tlsa` (RFC 7672 §3).
   */
  policy?: "dane" | "mta-sts";
  tlsa?: TlsaRecord[];
  /** A REQUIRETLS message (RFC 8689 §4.2.1): a server without STARTTLS is a permanent failure (5.7.30). */
  requireTls?: boolean;
  /** Speak LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data. */
  lmtp?: boolean;
}

/**
 * Why a connection could not be set up, as the outcome for its recipients (with a Remote-MTA only when the server
 * refused in a reply). `tlsFailed`: an opportunistic retry without STARTTLS may work. `unreachable`: the connect
 * itself timed out (the courier then spares the destination for a while).
 */
export class SessionError extends Error {
  /** Under a TLS policy: the RFC 8460 §4.3 result-type of the failure, for TLS-RPT. */
  tlsFailure?: string;

  constructor(
    readonly outcome: Outcome,
    readonly tlsFailed = false,
    readonly unreachable = false,
  ) {
    super(replyLine(outcome));
  }
}

function withTlsFailure(e: SessionError, type: string): SessionError {
  e.tlsFailure = type;
  return e;
}

/** RFC 8460 §4.3 result-type of a failed verified handshake (Node/OpenSSL error codes in the message). */
function certificateFailure(why: string): string {
  if (/ALTNAME|hostname|Host:|does not match/i.test(why)) return "certificate-host-mismatch";
  if (/EXPIRED|NOT_YET_VALID/i.test(why)) return "certificate-expired";
  return "certificate-not-trusted";
}

/** The RSET that checks a reused connection failed: nothing was sent for this message, try a fresh one. */
export class StaleConnectionError extends Error {}

const enc = new TextEncoder();
/** Pieces smaller than this are copied into one write buffer; larger ones are written as they are. */
const STAGE = 64 * 1024;
/** Room for dot-stuffing and the end of data in a message's first staging buffer. */
const STAGE_SLACK = 1024;
const EMPTY = new Uint8Array(0);
/** Wait for the socket to drain before queueing more than this (memory stays bounded for big messages). */
const HIGH_WATER = 256 * 1024;

/** True when `s` holds a character that must never reach a command line (CR, LF, any C0 control or DEL). */
export function hasControl(s: string): boolean {
  return /[\x00-\x1f\x7f]/.test(s);
}

const isAscii = (s: string): boolean => !/[^\x00-\x7f]/.test(s);

/** RFC 3463 status at the start of a reply line (RFC 2034 §4), with the space after it. */
const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: +|$)/;

/**
 * The outcome a remote reply means, structured here, where it comes off the wire: the enhanced code from its
 * first line (RFC 2034 §4: every line carries the same one; it is dropped from each so the text reads once), ""
 * when the server sent none. `remoteMta`: the host that sent it.
 */
export function remoteOutcome(r: SmtpReply, host: string, dsn = true): Outcome {
  const m = r.lines.length > 0 ? ENHANCED.exec(r.lines[0]) : null;
  const enhanced = m === null ? "" : m[1];
  let text = "";
  for (const line of r.lines) {
    const t = m !== null && line.startsWith(enhanced) ? line.slice(enhanced.length).trimStart() : line;
    text = text === "" ? t : `${text} ${t}`;
  }
  text = text.replace(/[\r\n]+/g, " ").trim();
  const o: Outcome = { kind: kindOfCode(r.code), code: r.code, enhanced, text, remoteMta: host };
  // RFC 3461 §5.2.2: a server without DSN takes over no notification duty: the delivery is only "relayed".
  if (o.kind === "delivered" && !dsn) o.relayed = true;
  return o;
}

const outcomeOf = remoteOutcome;

export class SmtpSession {
  readonly ext = new Map<string, string>();
  readonly reader = new ReplyReader();
  /** Transactions completed on this connection (a reused one is probed with RSET first). */
  transactions = 0;
  /** False once the connection is in an unknown state; it is then closed, never reused. */
  usable = true;
  private readonly enc = enc;
  /** One dot-stuffer per session, reset for each message. */
  private readonly stuffer = new DotStuffer();

  private constructor(
    readonly conn: ClientConn,
    readonly target: SessionTarget,
    private readonly opts: SessionOptions,
  ) {
    conn.setHandler(this.reader);
  }

  get host(): string {
    return this.target.name;
  }

  get tls(): boolean {
    return this.conn.tls !== null;
  }

  /** Connect, read the greeting, EHLO, STARTTLS, AUTH. Throws SessionError; the connection is closed then. */
  static async open(dialer: Dialer, target: SessionTarget, opts: SessionOptions): Promise<SmtpSession> {
    const where = target.unix !== undefined ? `${target.name}[unix:${target.unix}]` : `${target.name}[${target.address}]:${target.port}`;
    let conn: ClientConn;
    try {
      conn = await dialer.connect({
        host: target.address,
        port: target.port,
        timeoutMs: opts.timeouts.connectMs,
        ...(target.unix !== undefined ? { unix: target.unix } : {}),
        ...(opts.tls === "implicit" ? { tls: { servername: target.name, verify: opts.verify, ca: opts.ca } } : {}),
      });
    } catch (err) {
      const why = (err as Error).message;
      throw new SessionError(localOutcome("deferred", 451, "4.4.1", `connect to ${where} failed: ${why}`), false, /timed out/.test(why));
    }
    const s = new SmtpSession(conn, target, opts);
    try {
      await s.handshake(where);
      return s;
    } catch (err) {
      s.close();
      if (err instanceof SessionError) throw err;
      throw new SessionError(localOutcome("deferred", 451, "4.4.2", `${where}: ${(err as Error).message}`));
    }
  }

  private async handshake(where: string): Promise<void> {
    const t = this.opts.timeouts;
    const greeting = await this.reader.next(t.greetingMs, "the greeting");
    if (greeting.code !== 220) throw this.refused(greeting, "greeting");
    await this.hello();
    const offered = this.ext.has("STARTTLS");
    const policy = this.opts.policy;
    if (this.opts.tls === "required" && !offered) {
      if (this.opts.requireTls === true) {
        throw new SessionError(localOutcome("failed", 550, "5.7.30", `${where} does not offer STARTTLS, which REQUIRETLS needs`));
      }
      if (policy !== undefined) {
        throw withTlsFailure(
          new SessionError(localOutcome("deferred", 451, "4.7.5", `${where} does not offer STARTTLS, which its ${policyLabel(policy)} policy requires`)),
          "starttls-not-supported",
        );
      }
      throw new SessionError(localOutcome("deferred", 451, "4.7.4", `TLS is required, but ${where} does not offer STARTTLS`));
    }
    if ((this.opts.tls === "opportunistic" || this.opts.tls === "required") && offered) {
      const r = await this.command("STARTTLS", t.commandMs);
      if (r.code !== 220) {
        if (this.opts.tls === "required") throw this.refused(r, "STARTTLS");
      } else {
        // RFC 3207 §4.2: forget everything learnt before TLS, including any bytes the server sent early.
        this.reader.reset();
        let info;
        try {
          info = await this.conn.startTls({ servername: this.target.name, verify: this.opts.verify, ca: this.opts.ca });
        } catch (err) {
          const msg = (err as Error).message;
          const e = new SessionError(localOutcome("deferred", 451, "4.7.5", `TLS with ${where} failed: ${msg}${policy === undefined ? "" : ` (${policyLabel(policy)} policy)`}`), true);
          if (policy === "mta-sts") e.tlsFailure = certificateFailure(msg);
          else if (policy === "dane") e.tlsFailure = "validation-failure";
          throw e;
        }
        const tlsa = this.opts.tlsa;
        if (policy === "dane" && tlsa !== undefined && tlsa.length > 0) {
          // RFC 7672 §3: the certificate is authenticated by TLSA alone; a mismatch is never delivered to.
          const v = daneVerify(info.peerChain ?? [], tlsa, [this.target.name]);
          if (!v.ok) {
            throw withTlsFailure(new SessionError(localOutcome("deferred", 451, "4.7.5", `${where}: ${v.detail} (DANE policy)`)), "validation-failure");
          }
        }
        await this.hello();
      }
    }
    if (this.opts.auth) await this.authenticate(where);
  }

  private async hello(): Promise<void> {
    const t = this.opts.timeouts;
    this.ext.clear();
    const lmtp = this.opts.lmtp === true;
    // RFC 2033 §4.1: LHLO replaces EHLO, and an LMTP server has no HELO to fall back to.
    let r = await this.command(`${lmtp ? "LHLO" : "EHLO"} ${this.opts.helo}`, t.commandMs);
    if (r.code >= 500 && !lmtp) {
      // RFC 5321 §4.1.1.1 / §3.2: a server that does not know EHLO gets HELO, and no extensions are used.
      r = await this.command(`HELO ${this.opts.helo}`, t.commandMs);
      if (r.code !== 250) throw this.refused(r, "HELO");
      return;
    }
    if (r.code !== 250) throw this.refused(r, lmtp ? "LHLO" : "EHLO");
    for (const line of r.lines.slice(1)) {
      const sp = line.indexOf(" ");
      const kw = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
      this.ext.set(kw, sp < 0 ? "" : line.slice(sp + 1).trim());
    }
  }

  /** RFC 4954: PLAIN when offered (one round trip), else LOGIN. An AUTH failure defers: it is our configuration. */
  private async authenticate(where: string): Promise<void> {
    const a = this.opts.auth!;
    const t = this.opts.timeouts;
    if (!this.tls && this.opts.tls !== "none") {
      throw new SessionError(localOutcome("deferred", 451, "4.7.0", `not sending credentials to ${where} without TLS`));
    }
    const mechs = (this.ext.get("AUTH") ?? "").toUpperCase().split(/\s+/);
    let r: SmtpReply;
    if (mechs.includes("PLAIN")) {
      r = await this.command(`AUTH PLAIN ${encodeBase64(`\0${a.user}\0${a.password}`)}`, t.commandMs, "AUTH PLAIN");
    } else if (mechs.includes("LOGIN")) {
      r = await this.command("AUTH LOGIN", t.commandMs);
      if (r.code === 334) r = await this.command(encodeBase64(a.user), t.commandMs, "AUTH LOGIN user");
      if (r.code === 334) r = await this.command(encodeBase64(a.password), t.commandMs, "AUTH LOGIN password");
    } else {
      throw new SessionError(localOutcome("deferred", 451, "4.7.0", `${where} offers no AUTH mechanism we can use (PLAIN, LOGIN)`));
    }
    if (r.code !== 235) {
      // Our configuration's fault, decided here: the remote's reply is quoted, but it is not the outcome.
      throw new SessionError(localOutcome("deferred", 451, "4.7.8", `authentication to ${where} failed: ${replyText(r)}`));
    }
  }

  private refused(r: SmtpReply, what: string): SessionError {
    const o = remoteOutcome(r, this.host);
    // A 2xx where a refusal was expected (a greeting of 250, say) is still no way in: defer.
    if (o.kind === "delivered") o.kind = "deferred";
    o.text = `${o.text} (in reply to ${what})`;
    return new SessionError(o);
  }

  private async command(line: string, timeoutMs: number, what = line): Promise<SmtpReply> {
    if (hasControl(line)) throw new ConnectionError("refusing to send a command line with a control character");
    this.conn.write(this.enc.encode(`${line}\r\n`));
    return this.reader.next(timeoutMs, what);
  }

  /**
   * One mail transaction for `rcpts` (all of the same destination and the same envelope sender: the courier
   * groups them so). Never throws except StaleConnectionError (a reused connection that turned out dead before
   * anything was sent for this message).
   */
  async send(message: StoredMessage, rcpts: EnvelopeRecipient[]): Promise<Outcome[]> {
    const env = message.envelope;
    // A forwarded copy goes out with its SRS sender (EnvelopeRecipient.sender, CONTRACT "Forwarding").
    const sender = rcpts[0]?.sender ?? env.sender;
    const t = this.opts.timeouts;
    const host = this.host;
    const out: Array<Outcome | null> = rcpts.map(() => null);
    const all = (o: Outcome): Outcome[] => out.map((x) => x ?? o);
    // Refused here, before anything was sent for this message: our outcome, no Remote-MTA.
    const failAll = (code: number, enhanced: string, text: string): Outcome[] => all(localOutcome("failed", code, enhanced, text));

    // Nothing from the message or an address may put a line break on a command line (command injection).
    if (hasControl(sender)) return failAll(501, "5.1.7", "the sender address contains a control character");
    if (env.envid !== undefined && hasControl(env.envid)) return failAll(501, "5.5.4", "ENVID contains a control character");
    const needsUtf8 = env.smtputf8 && (!isAscii(sender) || rcpts.some((r) => !isAscii(r.address)));
    if (needsUtf8 && !this.ext.has("SMTPUTF8")) {
      // RFC 6531 §3.2: without SMTPUTF8 at the server the message cannot be sent; it is returned (5.6.7).
      return failAll(553, "5.6.7", `${host} does not support SMTPUTF8, which this message needs`);
    }
    const bdat = env.body === "BINARYMIME";
    if (bdat && !(this.ext.has("BINARYMIME") && this.ext.has("CHUNKING"))) {
      // RFC 3030 §3: BINARYMIME content goes only to a server that offers BINARYMIME and CHUNKING.
      return failAll(554, "5.6.3", `${host} does not support BINARYMIME and CHUNKING, which this message needs`);
    }
    if (env.body === "8BITMIME" && !this.ext.has("8BITMIME")) {
      // RFC 6152 §3: 8-bit content to a server without 8BITMIME must be converted or returned; we return it.
      return failAll(554, "5.6.3", `${host} does not support 8BITMIME, which this message needs`);
    }
    // REQUIRETLS governs relaying to the next SMTP hop (RFC 8689 §4); LMTP is the final hop into our own mail store.
    const requireTls = env.requireTls === true && this.opts.lmtp !== true;
    if (requireTls && (!this.tls || !this.ext.has("REQUIRETLS"))) {
      // RFC 8689 §4.2.1: only over TLS to a server that offers REQUIRETLS; otherwise the message is returned.
      return failAll(550, "5.7.30", `${host} does not support REQUIRETLS, which this message needs`);
    }
    const limit = Number(this.ext.get("SIZE") ?? "0");
    if (this.ext.has("SIZE") && limit > 0 && message.size > limit) {
      // RFC 1870 §6: do not send what the server already said it will refuse.
      return failAll(552, "5.3.4", `message size ${message.size} exceeds the limit ${limit} of ${host}`);
    }

    const dsn = this.ext.has("DSN");
    // CONTRACT: addresses leave in RFC 5321 form (a local part that needs quoting is quoted).
    let mail = `MAIL FROM:<${mailboxText(sender)}>`;
    if (this.ext.has("8BITMIME") && env.body !== "7BIT") mail += ` BODY=${env.body}`;
    if (needsUtf8) mail += " SMTPUTF8";
    if (this.ext.has("SIZE")) mail += ` SIZE=${message.size}`;
    if (dsn && env.ret !== undefined) mail += ` RET=${env.ret}`;
    if (dsn && env.envid !== undefined) mail += ` ENVID=${encodeXtext(env.envid)}`;
    if (requireTls) mail += " REQUIRETLS";
    const lines: string[] = [];
    const sent: number[] = []; // indices of rcpts with a RCPT line
    for (let k = 0; k < rcpts.length; k++) {
      const r = rcpts[k];
      if (hasControl(r.address) || (r.orcpt !== undefined && hasControl(r.orcpt))) {
        out[k] = localOutcome("failed", 501, "5.1.3", "the recipient address contains a control character");
        continue;
      }
      let line = `RCPT TO:<${mailboxText(r.address)}>`;
      if (dsn && r.notify !== undefined) line += ` NOTIFY=${r.notify.join(",")}`;
      if (dsn && r.orcpt !== undefined) {
        const semi = r.orcpt.indexOf(";");
        // RFC 3461 §4.2: only an rfc822 address is held decoded; other types (utf-8, RFC 6533) go as received.
        const type = r.orcpt.slice(0, semi);
        const addr = r.orcpt.slice(semi + 1);
        if (semi > 0) line += ` ORCPT=${type};${type.toLowerCase() === "rfc822" ? encodeXtext(addr) : addr}`;
      }
      lines.push(line);
      sent.push(k);
    }
    if (sent.length === 0) return all(localOutcome("failed", 501, "5.1.3", "no usable recipient"));

    const reused = this.transactions > 0;
    const pipelining = this.ext.has("PIPELINING");
    let stage = "";
    try {
      if (pipelining) {
        // RFC 2920 §3.1: RSET, MAIL, the RCPTs and DATA go in one write; the replies come back in order.
        let batch = reused ? "RSET\r\n" : "";
        batch += `${mail}\r\n`;
        for (const l of lines) batch += `${l}\r\n`;
        if (!bdat) batch += "DATA\r\n";
        this.conn.write(this.enc.encode(batch));
      }
      if (reused) {
        stage = "RSET";
        let r: SmtpReply;
        try {
          r = pipelining ? await this.reader.next(t.commandMs, "RSET") : await this.command("RSET", t.commandMs);
        } catch {
          throw new StaleConnectionError("reused connection is gone");
        }
        if (r.code !== 250) throw new StaleConnectionError(`RSET refused: ${replyText(r)}`);
      }
      stage = "MAIL FROM";
      const m = pipelining ? await this.reader.next(t.mailMs, "MAIL FROM") : await this.command(mail, t.mailMs, "MAIL FROM");
      const accepted: number[] = [];
      for (let j = 0; j < sent.length; j++) {
        stage = "RCPT TO";
        if (!pipelining && m.code !== 250) break;
        const r = pipelining ? await this.reader.next(t.rcptMs, "RCPT TO") : await this.command(lines[j], t.rcptMs, "RCPT TO");
        const k = sent[j];
        if (m.code !== 250) out[k] = outcomeOf(m, host);
        else if (r.code === 250 || r.code === 251) accepted.push(k);
        else out[k] = outcomeOf(r, host);
      }
      if (m.code !== 250) for (const k of sent) out[k] ??= outcomeOf(m, host);
      if (bdat) {
        if (accepted.length === 0) return this.finish(all(failedFallback(host)));
        stage = "BDAT";
        this.conn.write(this.enc.encode(`BDAT ${message.size} LAST\r\n`));
        await this.body(message, null);
      } else {
        stage = "DATA";
        const d = pipelining
          ? await this.reader.next(t.dataInitMs, "DATA")
          : accepted.length > 0
            ? await this.command("DATA", t.dataInitMs)
            : null;
        if (d === null) return this.finish(all(failedFallback(host)));
        if (d.code !== 354) {
          for (const k of accepted) out[k] = outcomeOf(d, host);
          return this.finish(all(failedFallback(host)));
        }
        if (accepted.length === 0) {
          // RFC 2033 §4.2: an LMTP server sends one reply per accepted recipient, so none here: the state of
          // the connection is unclear, end it.
          if (this.opts.lmtp === true) {
            this.close();
            return all(failedFallback(host));
          }
          // RFC 2920 §3.1: every RCPT failed but DATA was accepted: end it empty; the server rejects it.
          this.conn.write(this.enc.encode(".\r\n"));
          await this.reader.next(t.dataEndMs, "end of data");
          return this.finish(all(failedFallback(host)));
        }
        this.stuffer.reset();
        await this.body(message, this.stuffer);
      }
      stage = "end of data";
      if (this.opts.lmtp === true) {
        // RFC 2033 §4.2: one reply per recipient accepted at RCPT, in that order; each is that recipient's
        // outcome. LMTP delivery is final delivery, so a 250 is "delivered", never "relayed".
        for (const k of accepted) out[k] = outcomeOf(await this.reader.next(t.dataEndMs, "end of data"), host, true);
        return this.finish(all(failedFallback(host)));
      }
      const fin = await this.reader.next(t.dataEndMs, bdat ? "BDAT LAST" : "end of data");
      for (const k of accepted) out[k] = outcomeOf(fin, host, dsn);
      return this.finish(all(failedFallback(host)));
    } catch (err) {
      if (err instanceof StaleConnectionError) {
        this.close();
        throw err;
      }
      // The connection is in an unknown state: recipients without a reply are retried later (RFC 5321 §4.5.3.2,
      // §6.1: a lost reply to the final dot can mean a duplicate, never a loss).
      this.close();
      const why = err instanceof Error ? err.message : String(err);
      // No reply came (timeout, connection lost): the outcome is ours, with no Remote-MTA.
      return all(localOutcome("deferred", 451, "4.4.2", `${host}: ${why} (during ${stage})`));
    }
  }

  private finish(outcomes: Outcome[]): Outcome[] {
    this.transactions++;
    return outcomes;
  }

  /**
   * Stream the message: dot-stuffed for DATA, raw for BDAT. Small pieces are gathered into one write, the end of
   * data included, so a small message costs one send. The first staging buffer is sized to the message (a 1 KiB
   * message does not pay for zeroing 64 KiB); a written buffer is never reused, as the connection may still hold a
   * view of it (queued by backpressure, or an adapter whose write completes asynchronously).
   */
  private async body(message: StoredMessage, stuffer: DotStuffer | null): Promise<void> {
    const t = this.opts.timeouts;
    const conn = this.conn;
    let stage = new Uint8Array(Math.min(STAGE, message.size + STAGE_SLACK));
    let used = 0;
    const flushStage = (): void => {
      if (used === 0) return;
      conn.write(stage.subarray(0, used));
      stage = EMPTY;
      used = 0;
    };
    const put = (b: Uint8Array): void => {
      if (b.length >= STAGE / 4) {
        flushStage();
        conn.write(b);
        return;
      }
      if (used + b.length > stage.length) {
        flushStage();
        stage = new Uint8Array(STAGE);
      }
      stage.set(b, used);
      used += b.length;
    };
    for (const chunk of message.chunks()) {
      if (stuffer !== null) stuffer.push(chunk, put);
      else put(chunk);
      if (conn.pendingWrite > HIGH_WATER) {
        flushStage();
        while (conn.pendingWrite > 0) await this.reader.drained(t.dataBlockMs);
      }
      if (this.reader.failed) throw new ConnectionError("connection lost while sending the message");
    }
    if (stuffer !== null) put(stuffer.end());
    flushStage();
  }

  /** Polite end of an idle connection (RFC 5321 §4.1.1.10). */
  quit(): void {
    if (!this.reader.failed) this.conn.write(this.enc.encode("QUIT\r\n"));
    this.conn.end();
    this.usable = false;
  }

  close(): void {
    this.usable = false;
    this.conn.destroy();
  }
}

function policyLabel(p: "dane" | "mta-sts"): string {
  return p === "dane" ? "DANE" : "MTA-STS";
}

/** Recipients the server never answered for (cannot happen with a conforming server). */
function failedFallback(host: string): Outcome {
  return localOutcome("deferred", 451, "4.4.2", `${host}: no reply for this recipient`);
}

