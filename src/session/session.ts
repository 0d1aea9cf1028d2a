/**
 * One SMTP server session (RFC 5321) as a state machine over bytes: the transport hands it chunks, it hands back
 * replies through the Conn it was given and reaches the world only through ports (spool, policy, auth, clock,
 * log, metrics). All parsing is on Uint8Array views of the chunks (no string conversion of the stream).
 *
 * Pipelining (RFC 2920): replies are queued while a chunk is processed and written once per chunk, in order.
 * Replies go out as bytes: the fixed ones are encoded once for the process (protocol replyBytes), so a chunk with
 * one reply writes a shared constant without an encoder call or an allocation.
 * While an asynchronous step runs (end-of-data fsync, AUTH verification, TLS handshake, a stage's answer) the phase
 * is "busy": later bytes are kept and processed when the step completes, so replies never overtake each other.
 *
 * Inbound stages (mail/stage.ts) are opened per connection and asked, in order, at connect, HELO, MAIL, RCPT, with
 * the body as it streams and at end of data. The session knows no stage by name: app/ hands it the list.
 */
import type {
  EndVerdict,
  Envelope,
  EnvelopeRecipient,
  MaybePromise,
  MessageObserver,
  SessionView,
  Stage,
  StageRecipient,
  StageSession,
  StageTransaction,
  Verdict,
} from "../mail/index.ts";
import {
  BareNewlineCheck,
  DATA_BARE_NEWLINE,
  DATA_MORE,
  DotReader,
  OwnAuthResultsFilter,
  LOGIN_PASS_PROMPT,
  LOGIN_USER_PROMPT,
  MAX_AUTH_LINE,
  MAX_COMMAND_LINE,
  Reply,
  bdatOk,
  decodeBase64,
  decodePlain,
  decodeText,
  findCrlf,
  multiline,
  okQueued,
  parseCommand,
  replyBytes,
  type Command,
  type MailParams,
  type ParseError,
} from "../protocol/index.ts";
import type { Conn, TlsInfo } from "../transport/types.ts";
import type {
  AuthPort,
  Clock,
  LogPort,
  MessageSink,
  PolicyPort,
  RcptContext,
  RcptDecision,
  SessionMetrics,
  SpoolPort,
} from "./ports.ts";
import { receivedFromPrefix, receivedPrefix } from "./received.ts";

export interface SessionSettings {
  hostname: string;
  listener: string;
  tls: "none" | "starttls" | "implicit";
  auth: "off" | "optional" | "required";
  maxMessageSize: number;
  maxRecipients: number;
  maxAuthFailures: number;
  /** Errors before each further error reply is delayed ERROR_DELAY_MS (CONTRACT [limits] error_delay_after). */
  errorDelayAfter: number;
  /** The maxErrors-th error reply is 421 4.7.0, then close (CONTRACT [limits] max_errors). */
  maxErrors: number;
  /**
   * With [checks] on, our authserv-id (the hostname): Authentication-Results fields that claim it are removed from
   * every message as it streams (RFC 8601 §5), before stages and spool see it. "" keeps them all.
   */
  ownAuthservId?: string;
}

export interface SessionDeps {
  spool: SpoolPort;
  /** The inbound stages, in order (app/ builds the list; the hop counter is the first). */
  stages: ReadonlyArray<Stage>;
  policy: PolicyPort;
  auth: AuthPort;
  clock: Clock;
  log: LogPort;
  metrics: SessionMetrics;
  /** Called once when the session is over (socket closed). */
  onGone(session: Session): void;
}

/** The closed set of phases; every switch over it is exhaustive. */
type Phase = "command" | "data" | "bdat" | "authPlain" | "authLoginUser" | "authLoginPass" | "busy" | "closed";

const encoder = new TextEncoder();
/**
 * The Received field is encoded here and copied by the sink (MessageSink.write: the caller may reuse the bytes):
 * one buffer for the process instead of an allocation per message. A longer field (a huge EHLO name) is encoded
 * on its own.
 */
const headerScratch = new Uint8Array(4096);
/** Stop reading from a client that does not read its replies once this much is queued. */
const WRITE_HIGH_WATER = 64 * 1024;
/** Bytes kept while an asynchronous step runs before the socket is paused. */
const STASH_HIGH_WATER = 256 * 1024;
const AUTH_DELAY_MS = 1000;
/** Each error reply past error_delay_after waits this long, the session reading nothing meanwhile (Postfix smtpd). */
const ERROR_DELAY_MS = 1000;
/**
 * At most this many bytes of input are processed per event-loop turn (CONTRACT "Fairness"): the rest waits for a
 * later turn (Clock.defer) with the socket paused, so one connection that sends fast cannot hold the loop while
 * others wait. A chunk of a socket read is rarely larger, so normal traffic pays one compare per chunk.
 */
const TURN_BYTES = 64 * 1024;
/** An over-long line counts as one more error for each this many bytes it goes on without CRLF. */
const DISCARD_ERROR_BYTES = 64 * 1024;

/**
 * Replies that count as a client error (Postfix smtpd's error count): unknown command (500), syntax (501, 555),
 * bad sequence (503), unknown mechanism (504), AUTH refused or failed (530, 535, 538). Policy refusals (550, 554,
 * 452 ...) do not: a client may legitimately try many recipients.
 */
function isClientError(line: string): boolean {
  const c0 = line.charCodeAt(0);
  if (c0 !== 53) return false; // "5"
  const code = line.slice(0, 3);
  return code === "500" || code === "501" || code === "503" || code === "504" || code === "555" ||
    code === "530" || code === "535" || code === "538";
}

const PARSE_REPLY: Record<ParseError, string> = {
  unknown: Reply.unknownCommand,
  syntax: Reply.syntax,
  badSender: Reply.badSender,
  badRecipient: Reply.badRecipient,
  badParam: Reply.badParam,
  badDsn: Reply.badDsnParam,
};

/** The mutable side of the SessionView that stages read. */
type View = { -readonly [K in keyof SessionView]: SessionView[K] };

type RcptTargets = Extract<RcptDecision, { kind: "accept" }>["targets"];

const NO_OBSERVERS: MessageObserver[] = [];

/** Which stages implement a hook, found once per connection so that a hook nobody has costs nothing. */
function withHook<K extends keyof StageSession>(sessions: StageSession[], hook: K): StageSession[] {
  return sessions.filter((s) => typeof s[hook] === "function");
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** "AUTH " at buf[pos], case-insensitive, so that the longer AUTH line limit applies (CONTRACT: 12288). */
function startsWithAuth(buf: Uint8Array, pos: number, end: number): boolean {
  return (
    end - pos >= 5 &&
    (buf[pos]! | 0x20) === 0x61 &&
    (buf[pos + 1]! | 0x20) === 0x75 &&
    (buf[pos + 2]! | 0x20) === 0x74 &&
    (buf[pos + 3]! | 0x20) === 0x68 &&
    buf[pos + 4] === 0x20
  );
}

function routeKey(r: EnvelopeRecipient): string {
  return r.route.kind === "local"
    ? `l:${r.route.domain}/${r.route.localPart}`
    : `r:${r.address.slice(0, r.address.lastIndexOf("@") + 1)}${r.route.domain}`;
}

export class Session {
  private phase: Phase = "command";
  /** Replies not yet written: the first one, then (pipelining) the rest in order. */
  private out: Uint8Array | null = null;
  private outMore: Uint8Array[] | null = null;
  /** Unprocessed input: a partial command line, or bytes that arrived while busy. */
  private stash: Uint8Array | null = null;
  /** Dropping an over-long command line up to its CRLF (then 500 5.5.2). */
  private discarding = false;
  /** Bytes between STARTTLS and the handshake are discarded (CVE-2011-0411). */
  private tlsPending = false;
  private pausedForWrite = false;
  private pausedForStash = false;
  /** Over TURN_BYTES in one turn: `rest` waits for the next turn, the socket is paused. */
  private pausedForTurn = false;
  private rest: Uint8Array | null = null;
  private continueFn: (() => void) | null = null;
  /** An error reply is being delayed (error_delay_after): the socket is paused. */
  private pausedForDelay = false;
  /** Error replies so far (CONTRACT max_errors; NOOP and successful commands do not reset it). */
  private errors = 0;
  /** Bytes of the over-long line being discarded, towards its next error (DISCARD_ERROR_BYTES). */
  private discarded = 0;
  /** SIGTERM: finish the current transaction, then 421 4.3.2. */
  private draining = false;

  /** HELO name, client, TLS, authenticated user and byte count: the session's own state, which stages read. */
  private readonly v: View;
  private esmtp = false;
  private authFailures = 0;
  private loginUser = "";
  private tlsInfo: TlsInfo | null;
  /** The Received field up to the id; null when EHLO, STARTTLS or AUTH changed what it says. */
  private rxPrefix: string | null = null;
  private rxUtf8 = false;
  /** What RCPT hands the policy, made once per session (the policy only reads it during the call). */
  private rcptCtx: RcptContext | null = null;

  // The mail transaction (RFC 5321 §3.3).
  private sender: string | null = null;
  private mailParams: MailParams | null = null;
  private recipients: EnvelopeRecipient[] = [];
  private seen: Set<string> | null = null;
  private rcptCount = 0;
  private firstRcpt = "";
  private sink: MessageSink | null = null;
  /** The transaction as stages see it (made at MAIL when any stage has a message hook). */
  private tx: { sender: string; recipients: StageRecipient[]; smtputf8: boolean } | null = null;
  /** Removes forged Authentication-Results fields of this message (settings.ownAuthservId), null when off. */
  private arFilter: OwnAuthResultsFilter | null = null;
  /** This message's body observers (from the stages' message hooks). */
  private observers: MessageObserver[] = NO_OBSERVERS;

  // The stages' hooks of this connection, by hook (empty when no stage has it).
  private connectHooks: StageSession[] = [];
  private heloHooks: StageSession[] = [];
  private mailHooks: StageSession[] = [];
  private rcptHooks: StageSession[] = [];
  private messageHooks: StageSession[] = [];
  private closeHooks: StageSession[] = [];
  private bodySize = 0;
  private tooBig = false;
  private bdatRemaining = 0;
  private bdatLast = false;
  /** This BDAT chunk is read and thrown away (no transaction, or the transaction already failed). */
  private bdatDiscard: string | null = null;
  private bdatActive = false;

  // Made on first use: thousands of idle sessions must each stay a few hundred bytes (issue 5: ≤ 4 KiB each).
  private dotReader: DotReader | null = null;
  private bareCheck: BareNewlineCheck | null = null;
  private emitBodyFn: ((bytes: Uint8Array) => void) | null = null;

  private get dot(): DotReader {
    return (this.dotReader ??= new DotReader());
  }
  private get bare(): BareNewlineCheck {
    return (this.bareCheck ??= new BareNewlineCheck());
  }
  private get emitBody(): (bytes: Uint8Array) => void {
    return (this.emitBodyFn ??= (bytes: Uint8Array): void => this.body(bytes));
  }

  lastByteAt: number;
  lastCommandAt: number;

  constructor(
    private readonly conn: Conn,
    private readonly settings: SessionSettings,
    private readonly deps: SessionDeps,
  ) {
    this.tlsInfo = conn.tls;
    this.lastByteAt = this.lastCommandAt = deps.clock.now();
    this.v = {
      clientAddress: conn.remoteAddress,
      listener: settings.listener,
      helo: null,
      tls: this.tlsText(),
      authUser: undefined,
      bytesReceived: 0,
    };
  }

  /** Open the stages, ask them about the connection, then send the greeting (RFC 5321 §4.2). */
  start(): void {
    this.deps.log.info("connection.open", {
      client: this.conn.remoteAddress,
      listener: this.settings.listener,
      tls: this.v.tls,
    });
    const opened: StageSession[] = [];
    for (const stage of this.deps.stages) {
      const s = stage.open(this.v);
      if (s !== null) opened.push(s);
    }
    if (opened.length > 0) {
      this.connectHooks = withHook(opened, "connect");
      this.heloHooks = withHook(opened, "helo");
      this.mailHooks = withHook(opened, "mail");
      this.rcptHooks = withHook(opened, "rcpt");
      this.messageHooks = withHook(opened, "message");
      this.closeHooks = withHook(opened, "close");
    }
    const greet = (verdict: Verdict): void => {
      // A stage refusing the connection answers instead of the banner, then the connection is closed.
      if (verdict !== null) return this.closeWith(verdict);
      this.reply(`220 ${this.settings.hostname} ESMTP ringmta`);
    };
    if (this.connectHooks.length === 0) greet(null);
    else this.ask(this.connectHooks, (s) => s.connect!(), greet);
    this.flush();
  }

  get closed(): boolean {
    return this.phase === "closed";
  }

  get inTransaction(): boolean {
    return this.sender !== null || this.phase === "busy";
  }

  // ---- transport events ------------------------------------------------------------------------------------

  onData(chunk: Uint8Array): void {
    this.lastByteAt = this.deps.clock.now();
    this.v.bytesReceived += chunk.length;
    if (this.phase === "closed" || this.tlsPending) return;
    if (this.rest !== null) {
      // Bytes that arrived before the pause took effect go after those still waiting for their turn.
      this.rest = concat(this.rest, chunk);
      return;
    }
    if (this.phase === "busy") {
      this.stash = this.stash ? concat(this.stash, chunk) : chunk;
      if (this.stash.length > STASH_HIGH_WATER && !this.pausedForStash) {
        this.pausedForStash = true;
        this.conn.pause();
      }
      return;
    }
    const buf = this.stash ? concat(this.stash, chunk) : chunk;
    this.stash = null;
    this.feed(buf, this.lastByteAt);
  }

  /** Process buf, at most TURN_BYTES of it now; the rest on a later turn (CONTRACT "Fairness"). */
  private feed(buf: Uint8Array, now: number): void {
    if (buf.length > TURN_BYTES) {
      this.rest = buf.subarray(TURN_BYTES);
      buf = buf.subarray(0, TURN_BYTES);
      if (!this.pausedForTurn) {
        this.pausedForTurn = true;
        this.conn.pause();
      }
      this.deps.clock.defer((this.continueFn ??= (): void => this.nextTurn()));
    }
    this.run(buf, 0, now);
    this.flush();
  }

  /** A later turn: go on with what feed() left over. */
  private nextTurn(): void {
    const rest = this.rest;
    this.rest = null;
    if (rest === null || this.phase === "closed" || this.tlsPending) return;
    if (this.phase === "busy") {
      // An asynchronous step began meanwhile: the bytes wait for it like any that arrive while busy.
      this.stash = this.stash ? concat(this.stash, rest) : rest;
    } else {
      const buf = this.stash ? concat(this.stash, rest) : rest;
      this.stash = null;
      this.feed(buf, this.deps.clock.now());
    }
    if (this.rest === null && this.pausedForTurn) {
      this.pausedForTurn = false;
      this.resumeIfFree();
    }
  }

  /** The socket reads again once no reason to pause it is left. */
  private resumeIfFree(): void {
    if (this.phase === "closed") return;
    if (!this.pausedForWrite && !this.pausedForStash && !this.pausedForTurn && !this.pausedForDelay) this.conn.resume();
  }

  onDrain(): void {
    if (this.pausedForWrite && this.conn.pendingWrite < WRITE_HIGH_WATER) {
      this.pausedForWrite = false;
      this.resumeIfFree();
    }
  }

  onClose(): void {
    if (this.phase !== "closed") this.phase = "closed";
    this.deps.log.info("connection.close", {
      client: this.conn.remoteAddress,
      listener: this.settings.listener,
      tls: this.v.tls,
      auth: this.v.authUser,
    });
    this.abortMessage();
    this.dropObservers();
    for (const s of this.closeHooks) {
      try {
        s.close!();
      } catch (err) {
        this.stageFailed(err);
      }
    }
    this.deps.onGone(this);
  }

  /** Called by the idle sweeper: 421 4.4.2 when nothing useful arrived for idleMs (CONTRACT: slowloris too). */
  checkIdle(now: number, idleMs: number): void {
    switch (this.phase) {
      case "data":
      case "bdat":
        if (now - this.lastByteAt <= idleMs) return;
        break;
      case "command":
      case "authPlain":
      case "authLoginUser":
      case "authLoginPass":
        if (now - this.lastCommandAt <= idleMs) return;
        break;
      case "busy":
        // Waiting on our own work (fsync, password check) is not the client's idleness; a stalled handshake is.
        if (!this.tlsPending || now - this.lastByteAt <= idleMs) return;
        break;
      case "closed":
        return;
    }
    this.deps.metrics.rejected("421");
    this.closeWith(Reply.idle);
  }

  /** SIGTERM. Not forced: sessions between transactions get 421 now, others when their transaction ends. */
  shutdown(force: boolean): void {
    if (this.phase === "closed") return;
    if (!force && this.inTransaction) {
      this.draining = true;
      return;
    }
    this.closeWith(Reply.shutdown);
  }

  // ---- the byte loop ---------------------------------------------------------------------------------------

  /** `now`: when these bytes arrived (the time of every command line completed by them). */
  private run(buf: Uint8Array, pos: number, now: number): void {
    const end = buf.length;
    while (pos < end) {
      switch (this.phase) {
        case "command":
        case "authPlain":
        case "authLoginUser":
        case "authLoginPass": {
          if (this.discarding) {
            const lf = findCrlf(buf, pos, end);
            if (lf < 0) {
              // A line that never ends is an error for every DISCARD_ERROR_BYTES of it (as Postfix takes each
              // line_length_limit piece for a line), so a stream without CRLF also ends at max_errors.
              this.discarded += end - pos;
              while (this.discarded >= DISCARD_ERROR_BYTES) {
                this.discarded -= DISCARD_ERROR_BYTES;
                if (++this.errors >= this.settings.maxErrors) {
                  this.deps.metrics.rejected("421");
                  this.deps.log.warn("smtp.too_many_errors", { client: this.conn.remoteAddress, listener: this.settings.listener, errors: this.errors });
                  return this.closeWith(Reply.tooManyErrors);
                }
              }
              // Keep a trailing CR: its LF may start the next chunk.
              if (buf[end - 1] === 13) this.stash = buf.subarray(end - 1);
              return;
            }
            pos = lf + 1;
            this.discarding = false;
            this.discarded = 0;
            this.lastCommandAt = now;
            // CONTRACT: an AUTH exchange in progress ends here; the next line is a command again, not a SASL
            // response (a password taken from whatever follows). An error, not a failed authentication.
            if (this.phase !== "command") {
              this.phase = "command";
              this.loginUser = "";
            }
            this.reject(Reply.lineTooLong);
            continue;
          }
          const limit = this.phase !== "command" || startsWithAuth(buf, pos, end) ? MAX_AUTH_LINE : MAX_COMMAND_LINE;
          const lf = findCrlf(buf, pos, Math.min(end, pos + limit));
          if (lf < 0) {
            if (end - pos >= limit) {
              // RFC 5321 §4.5.3.1.4: over-long line. Drop it to its end, then 500; the session survives.
              this.discarding = true;
              continue;
            }
            this.stash = buf.subarray(pos);
            return;
          }
          const start = pos;
          pos = lf + 1;
          this.lastCommandAt = now;
          // Commands are parsed in place (no view per line); AUTH responses are rare and get their own.
          if (this.phase === "command") this.command(buf, start, lf - 1);
          else this.authResponse(buf.subarray(start, lf - 1));
          break;
        }
        case "data": {
          const r = this.dot.read(buf, pos, end, this.emitBody);
          if (r === DATA_MORE) return;
          if (r === DATA_BARE_NEWLINE) {
            this.bareNewline();
            return;
          }
          pos = r;
          this.endOfMessage();
          break;
        }
        case "bdat": {
          const n = Math.min(this.bdatRemaining, end - pos);
          const slice = buf.subarray(pos, pos + n);
          pos += n;
          this.bdatRemaining -= n;
          if (this.bdatDiscard === null) {
            if (this.mailParams?.body !== "BINARYMIME" && !this.bare.scan(slice, 0, n)) {
              this.bareNewline();
              return;
            }
            this.body(slice);
          }
          if (this.bdatRemaining === 0) this.endOfChunk();
          break;
        }
        case "busy":
          // After STARTTLS the rest of the chunk is dropped, not kept (CVE-2011-0411).
          if (!this.tlsPending) this.stash = this.stash ? concat(this.stash, buf.subarray(pos)) : buf.subarray(pos);
          return;
        case "closed":
          return;
      }
    }
  }

  // ---- commands --------------------------------------------------------------------------------------------

  /** The command line buf[start..end), CRLF excluded. */
  private command(buf: Uint8Array, start: number, end: number): void {
    const parsed = parseCommand(buf, start, end);
    if (!parsed.ok) {
      this.reject(PARSE_REPLY[parsed.error]);
      return;
    }
    const cmd = parsed.command;
    switch (cmd.verb) {
      case "EHLO":
      case "HELO":
        return this.hello(cmd.domain, cmd.verb === "EHLO");
      case "MAIL":
        return this.mail(cmd);
      case "RCPT":
        return this.rcpt(cmd);
      case "DATA":
        return this.data();
      case "BDAT":
        return this.bdat(cmd.size, cmd.last);
      case "RSET":
        this.resetTransaction();
        return this.reply(Reply.ok);
      case "NOOP":
        return this.reply(Reply.noop);
      case "VRFY":
        return this.reply(Reply.vrfy);
      case "HELP":
        return this.reply(Reply.help);
      case "QUIT":
        return this.closeWith(Reply.quit);
      case "STARTTLS":
        return this.startTls();
      case "AUTH":
        return this.authStart(cmd.mechanism, cmd.initial);
    }
  }

  private hello(domain: string, esmtp: boolean): void {
    // RFC 5321 §4.1.4: EHLO/HELO in a transaction resets it.
    this.resetTransaction();
    if (this.heloHooks.length === 0) return this.greeted(domain, esmtp);
    this.ask(this.heloHooks, (s) => s.helo!(domain), (verdict) => {
      // A refused HELO leaves the session as it was before it (no name: MAIL gets 503 until one is accepted).
      if (verdict !== null) return this.reject(verdict);
      this.greeted(domain, esmtp);
    });
  }

  private greeted(domain: string, esmtp: boolean): void {
    this.v.helo = domain;
    this.esmtp = esmtp;
    this.rxPrefix = null;
    if (!esmtp) return this.reply(`250 ${this.settings.hostname}`);
    const s = this.settings;
    const lines = [
      `${s.hostname} Hello ${domain}`,
      "PIPELINING",
      `SIZE ${s.maxMessageSize}`,
      "8BITMIME",
      "SMTPUTF8",
      "ENHANCEDSTATUSCODES",
      "CHUNKING",
      "BINARYMIME",
      "DSN",
    ];
    if (s.tls === "starttls" && !this.tlsInfo) lines.push("STARTTLS");
    // RFC 8689 §4.1 and CONTRACT "EHLO": REQUIRETLS is offered under TLS only.
    if (this.tlsInfo) lines.push("REQUIRETLS");
    if (this.authOffered()) lines.push("AUTH PLAIN LOGIN");
    this.reply(multiline("250", lines));
  }

  /** CONTRACT: AUTH only under TLS, and never where auth = "off". */
  private authOffered(): boolean {
    return this.tlsInfo !== null && this.settings.auth !== "off";
  }

  private mail(cmd: Extract<Command, { verb: "MAIL" }>): void {
    if (this.v.helo === null || this.sender !== null) return this.reject(Reply.badSequence);
    if (this.settings.auth === "required" && this.v.authUser === undefined) return this.reject(Reply.authRequired);
    const p = cmd.params;
    if (cmd.path.utf8 && !p.smtputf8) return this.reject(Reply.smtputf8Required);
    // RFC 8689 §4.1 (CONTRACT "Replies"): a REQUIRETLS transaction over a plaintext connection is refused.
    if (p.requireTls === true && !this.tlsInfo) return this.reject(Reply.requireTlsNeedsTls);
    if (p.size !== undefined && p.size > this.settings.maxMessageSize) return this.reject(Reply.tooBig);
    if (this.v.authUser !== undefined && !this.deps.policy.senderAllowed(this.v.authUser, cmd.path.address)) {
      return this.reject(Reply.senderMismatch);
    }
    const sender = cmd.path.address;
    const accept = (verdict: Verdict): void => {
      if (verdict !== null) return this.reject(verdict);
      this.sender = sender;
      this.mailParams = p;
      if (this.messageHooks.length > 0) this.tx = { sender, recipients: [], smtputf8: p.smtputf8 };
      this.reply(Reply.okSender);
    };
    if (this.mailHooks.length === 0) accept(null);
    else this.ask(this.mailHooks, (s) => s.mail!(sender), accept);
  }

  private rcpt(cmd: Extract<Command, { verb: "RCPT" }>): void {
    if (this.sender === null || this.bdatActive) return this.reject(Reply.badSequence);
    if (this.rcptCount >= this.settings.maxRecipients) return this.reject(Reply.tooManyRecipients);
    if (cmd.path.utf8 && !this.mailParams!.smtputf8) return this.reject(Reply.smtputf8Required);
    const ctx = (this.rcptCtx ??= { clientAddress: this.conn.remoteAddress, authUser: undefined });
    ctx.authUser = this.v.authUser;
    ctx.sender = this.sender;
    const decision = this.deps.policy.recipient(cmd.path.localPart, cmd.path.domain, ctx);
    switch (decision.kind) {
      case "unknownUser":
        return this.reject(Reply.unknownUser);
      case "srsInvalid":
        return this.reject(decision.reason === "forged" ? Reply.srsForged : Reply.srsExpired);
      case "relayDenied":
        return this.reject(Reply.relayDenied);
      case "unwritable":
        return this.reject(Reply.mailboxUnwritable);
      case "tempfail":
        return this.reject(Reply.localError);
      case "accept":
        break;
    }
    const targets = decision.targets;
    if (this.rcptHooks.length === 0 && this.tx === null) return this.addRecipient(cmd, targets);
    const seen: StageRecipient = {
      address: cmd.path.address,
      localPart: cmd.path.localPart,
      domain: cmd.path.domain,
      targets: targets.map((t) => t.address),
    };
    const accept = (verdict: Verdict): void => {
      if (verdict !== null) return this.reject(verdict);
      this.tx?.recipients.push(seen);
      this.addRecipient(cmd, targets);
    };
    if (this.rcptHooks.length === 0) accept(null);
    else this.ask(this.rcptHooks, (s) => s.rcpt!(seen, this.sender!), accept);
  }

  private addRecipient(cmd: Extract<Command, { verb: "RCPT" }>, targets: RcptTargets): void {
    for (const t of targets) {
      const r: EnvelopeRecipient = { rcpt: cmd.path.address, address: t.address, route: t.route };
      if (t.sender !== undefined) r.sender = t.sender;
      if (cmd.params.orcpt !== undefined) r.orcpt = cmd.params.orcpt;
      if (cmd.params.notify !== undefined) r.notify = cmd.params.notify;
      // CONTRACT: within one transaction, at most once to each final mailbox. The first recipient needs no check;
      // the set of keys is made when a second one arrives.
      if (this.recipients.length > 0) {
        let seen = this.seen;
        if (seen === null) {
          seen = this.seen = new Set();
          for (const x of this.recipients) seen.add(routeKey(x));
        }
        const key = routeKey(r);
        if (seen.has(key)) continue;
        seen.add(key);
      }
      this.recipients.push(r);
    }
    if (this.rcptCount === 0) this.firstRcpt = cmd.path.address;
    this.rcptCount++;
    this.reply(Reply.okRecipient);
  }

  private data(): void {
    if (this.sender === null || this.rcptCount === 0 || this.bdatActive) return this.reject(Reply.badSequence);
    // RFC 3030 §3: BINARYMIME content can only be sent with BDAT.
    if (this.mailParams!.body === "BINARYMIME") return this.reject(Reply.binaryNeedsBdat);
    this.beginMessage();
    this.dot.reset();
    this.phase = "data";
    this.reply(Reply.dataGo);
  }

  private bdat(size: number, last: boolean): void {
    this.bdatRemaining = size;
    this.bdatLast = last;
    if (this.sender === null || this.rcptCount === 0) {
      // RFC 3030 §4.2: the chunk is read whatever the reply.
      this.bdatDiscard = Reply.badSequence;
    } else {
      this.bdatDiscard = null;
      if (!this.bdatActive) {
        this.bdatActive = true;
        this.bare.reset();
        this.beginMessage();
      }
    }
    this.phase = "bdat";
    if (size === 0) this.endOfChunk();
  }

  private beginMessage(): void {
    const sink = this.deps.spool.begin();
    this.sink = sink;
    this.bodySize = 0;
    this.tooBig = false;
    const authservId = this.settings.ownAuthservId ?? "";
    if (authservId === "") this.arFilter = null;
    else if (this.arFilter === null) this.arFilter = new OwnAuthResultsFilter(authservId);
    else this.arFilter.reset();
    if (this.tx !== null) {
      const tx: StageTransaction = this.tx;
      const observers: MessageObserver[] = [];
      for (const s of this.messageHooks) {
        const o = s.message!(tx);
        if (o !== null) observers.push(o);
      }
      this.observers = observers;
    }
    const utf8 = this.mailParams!.smtputf8;
    if (this.rxPrefix === null || this.rxUtf8 !== utf8) {
      this.rxUtf8 = utf8;
      this.rxPrefix = receivedPrefix({
        helo: this.v.helo!,
        clientAddress: this.conn.remoteAddress,
        hostname: this.settings.hostname,
        esmtp: this.esmtp,
        tls: this.tlsText(),
        authenticated: this.v.authUser !== undefined,
        utf8,
      });
    }
    const header = receivedFromPrefix(
      this.rxPrefix,
      sink.id,
      this.rcptCount === 1 ? this.firstRcpt : undefined,
      this.deps.clock.now(),
      utf8,
    );
    const r = encoder.encodeInto(header, headerScratch);
    sink.write(r.read === header.length ? headerScratch.subarray(0, r.written) : encoder.encode(header));
  }

  /** Message bytes, unstuffed (DATA) or raw (BDAT). The size limit is enforced here, while reading. */
  private body(bytes: Uint8Array): void {
    if (this.tooBig) return;
    this.bodySize += bytes.length;
    if (this.bodySize > this.settings.maxMessageSize) {
      this.tooBig = true;
      this.sink?.abort();
      this.dropObservers();
      return;
    }
    if (this.arFilter !== null) this.arFilter.feed(bytes, this.keepBytes);
    else this.keepBytes(bytes);
  }

  /** Message bytes that are kept: to the stages' observers, then the spool. */
  private readonly keepBytes = (bytes: Uint8Array): void => {
    const observers = this.observers;
    for (let i = 0; i < observers.length; i++) observers[i]!.write(bytes);
    this.sink!.write(bytes);
  };

  private endOfChunk(): void {
    if (this.bdatDiscard !== null) {
      this.phase = "command";
      return this.reject(this.bdatDiscard);
    }
    if (this.bdatLast) {
      if (this.mailParams?.body !== "BINARYMIME" && !this.bare.finish()) return this.bareNewline();
      return this.endOfMessage();
    }
    this.phase = "command";
    // RFC 3030 §4.2: after a failed chunk the transaction is over; later BDATs get 503.
    if (this.tooBig) return this.refuseMessage(Reply.tooBig);
    this.reply(bdatOk(this.bodySize));
  }

  private endOfMessage(): void {
    this.phase = "command";
    if (this.tooBig) return this.refuseMessage(Reply.tooBig);
    this.arFilter?.finish(this.keepBytes);
    const observers = this.observers;
    this.observers = NO_OBSERVERS;
    if (observers.length === 0) return this.commitMessage(null);
    // The stages' answers, in order; the first rejection wins. Synchronous answers keep the session out of busy.
    let prepend = "";
    let folder: string | undefined;
    let log: Record<string, unknown> | undefined;
    const settle = (v: EndVerdict): boolean => {
      if (v === null) return true;
      if (v.kind === "reject") {
        this.refuseMessage(v.reply, v.log);
        return false;
      }
      if (v.prepend !== undefined) prepend += v.prepend;
      if (v.folder !== undefined) folder = v.folder;
      if (v.log !== undefined) log = { ...log, ...v.log };
      return true;
    };
    const done = (): void =>
      this.commitMessage(prepend === "" && folder === undefined && log === undefined ? null : { prepend, folder, log });
    for (let i = 0; i < observers.length; i++) {
      let r: MaybePromise<EndVerdict>;
      try {
        r = observers[i]!.end();
      } catch (err) {
        this.stageFailed(err);
        return this.refuseMessage(Reply.localError);
      }
      if (r instanceof Promise) {
        this.enterBusy();
        void this.settleAsync(observers, i, r, settle).then((go) => this.finishBusy(() => go && done()));
        return;
      }
      if (!settle(r)) return;
    }
    done();
  }

  /** The end-of-data answers from observers[i] (a promise) on; false when one rejected (already replied). */
  private async settleAsync(
    observers: MessageObserver[],
    i: number,
    first: Promise<EndVerdict>,
    settle: (v: EndVerdict) => boolean,
  ): Promise<boolean> {
    try {
      if (!settle(await first)) return false;
      for (let k = i + 1; k < observers.length; k++) if (!settle(await observers[k]!.end())) return false;
      return true;
    } catch (err) {
      this.stageFailed(err);
      this.refuseMessage(Reply.localError);
      return false;
    }
  }

  /** Make the message durable; 250 only once it is (CONTRACT guarantees). */
  private commitMessage(
    added: { prepend: string; folder: string | undefined; log?: Readonly<Record<string, unknown>> } | null,
  ): void {
    const sink = this.sink!;
    const envelope = this.envelope();
    if (added?.folder !== undefined) envelope.folder = added.folder;
    const prepend = added !== null && added.prepend !== "" ? encoder.encode(added.prepend) : undefined;
    const size = this.bodySize;
    this.sink = null;
    this.enterBusy();
    sink.commit(envelope, prepend).then(
      () => {
        const reply = okQueued(sink.id);
        this.deps.metrics.accepted(this.settings.listener, size);
        this.deps.log.info("smtp.accepted", {
          id: sink.id,
          reply,
          listener: this.settings.listener,
          client: this.conn.remoteAddress,
          from: envelope.sender,
          to: envelope.recipients.map((r) => r.address),
          size,
          auth: this.v.authUser,
          ...added?.log,
        });
        this.resetTransaction();
        this.leaveBusy(reply);
      },
      (err: unknown) => {
        this.deps.log.error("spool.commit_failed", { id: sink.id, error: String(err), reply: Reply.localError });
        this.resetTransaction();
        this.deps.metrics.rejected("451");
        this.leaveBusy(Reply.localError);
      },
    );
  }

  /** A transaction refused at its end: one log line, nothing stored. */
  private refuseMessage(reply: string, fields?: Readonly<Record<string, unknown>>): void {
    this.deps.log.info("smtp.rejected", {
      client: this.conn.remoteAddress,
      listener: this.settings.listener,
      from: this.sender,
      to: this.recipients.map((r) => r.address),
      size: this.bodySize,
      reply,
      ...fields,
    });
    this.resetTransaction();
    this.reject(reply);
  }

  /** A stage threw or rejected: logged; the client gets 451 4.3.0 (never a 5xx for our own failure). */
  private stageFailed(err: unknown): void {
    this.deps.log.error("stage.failed", { client: this.conn.remoteAddress, error: String(err) });
  }

  /**
   * Ask `hooks` in order with `call` until one answers with a reply, then hand that reply (or null) to `then`:
   * at once when every answer was synchronous, else after a busy phase (later input waits, replies stay in order).
   */
  private ask(hooks: StageSession[], call: (s: StageSession) => MaybePromise<Verdict>, then: (v: Verdict) => void): void {
    for (let i = 0; i < hooks.length; i++) {
      let r: MaybePromise<Verdict>;
      try {
        r = call(hooks[i]!);
      } catch (err) {
        this.stageFailed(err);
        return then(Reply.localError);
      }
      if (r === null) continue;
      if (typeof r === "string") return then(r);
      this.enterBusy();
      void this.askAsync(hooks, i, r, call).then((v) => this.finishBusy(() => then(v)));
      return;
    }
    then(null);
  }

  private async askAsync(
    hooks: StageSession[],
    i: number,
    first: Promise<Verdict>,
    call: (s: StageSession) => MaybePromise<Verdict>,
  ): Promise<Verdict> {
    try {
      const v = await first;
      if (v !== null) return v;
      for (let k = i + 1; k < hooks.length; k++) {
        const r = await call(hooks[k]!);
        if (r !== null) return r;
      }
      return null;
    } catch (err) {
      this.stageFailed(err);
      return Reply.localError;
    }
  }

  private envelope(): Envelope {
    const p = this.mailParams!;
    const e: Envelope = {
      sender: this.sender!,
      recipients: this.recipients,
      body: p.body ?? "7BIT",
      smtputf8: p.smtputf8,
      client: { address: this.conn.remoteAddress, helo: this.v.helo!, listener: this.settings.listener },
      arrival: 0,
    };
    if (p.ret !== undefined) e.ret = p.ret;
    if (p.envid !== undefined) e.envid = p.envid;
    if (p.requireTls === true) e.requireTls = true;
    const tls = this.tlsText();
    if (tls !== undefined) e.client.tls = tls;
    if (this.v.authUser !== undefined) e.client.authUser = this.v.authUser;
    return e;
  }

  private tlsText(): string | undefined {
    return this.tlsInfo ? `${this.tlsInfo.version} ${this.tlsInfo.cipher}` : undefined;
  }

  private bareNewline(): void {
    // CONTRACT / RFC 5321 §2.3.8: a bare CR or LF in message data is never a line end (SMTP smuggling).
    this.deps.metrics.rejected("521");
    this.closeWith(Reply.bareNewline);
  }

  // ---- STARTTLS (RFC 3207) ---------------------------------------------------------------------------------

  private startTls(): void {
    if (this.settings.tls !== "starttls" || this.tlsInfo !== null) return this.reject(Reply.badSequence);
    this.reply(Reply.readyTls);
    this.flush();
    // CVE-2011-0411: whatever the client pipelined after STARTTLS is dropped, now and until the handshake, also
    // what waits for a later turn (TURN_BYTES).
    this.stash = null;
    this.rest = null;
    if (this.pausedForTurn) {
      // The handshake must be read: nothing waits for a later turn any more.
      this.pausedForTurn = false;
      this.resumeIfFree();
    }
    this.tlsPending = true;
    this.phase = "busy";
    this.conn.startTls().then(
      (info) => {
        this.deps.metrics.tlsHandshake(this.settings.listener, true);
        this.tlsPending = false;
        this.tlsInfo = info;
        this.v.tls = this.tlsText();
        this.rxPrefix = null;
        // RFC 3207 §4.2: forget everything learned before TLS.
        this.v.helo = null;
        this.esmtp = false;
        this.resetTransaction();
        this.stash = null;
        this.leaveBusy(null);
      },
      (err: unknown) => {
        this.deps.metrics.tlsHandshake(this.settings.listener, false);
        this.deps.log.warn("tls.handshake_failed", { client: this.conn.remoteAddress, error: String(err) });
        this.phase = "closed";
        this.conn.end();
      },
    );
  }

  // ---- AUTH (RFC 4954) -------------------------------------------------------------------------------------

  private authStart(mechanism: string, initial: string | undefined): void {
    if (this.settings.auth === "off") return this.reject(Reply.badSequence);
    if (this.tlsInfo === null) return this.reject(Reply.encryptionRequired);
    if (this.v.helo === null || this.v.authUser !== undefined || this.sender !== null) {
      return this.reject(Reply.badSequence);
    }
    if (this.deps.auth.ipStatus(this.conn.remoteAddress) === "blocked") return this.reject(Reply.authBlocked);
    if (mechanism === "PLAIN") {
      if (initial === undefined) {
        this.phase = "authPlain";
        return this.reply("334 ");
      }
      return this.plainResponse(initial);
    }
    if (mechanism === "LOGIN") {
      if (initial === undefined) {
        this.phase = "authLoginUser";
        return this.reply(LOGIN_USER_PROMPT);
      }
      return this.loginUserResponse(initial);
    }
    this.reject(Reply.authUnknownMech);
  }

  private authResponse(line: Uint8Array): void {
    const text = decodeText(line) ?? "";
    const phase = this.phase;
    this.phase = "command";
    if (text === "*") return this.reject(Reply.authCancelled);
    switch (phase) {
      case "authPlain":
        return this.plainResponse(text);
      case "authLoginUser":
        return this.loginUserResponse(text);
      case "authLoginPass":
        return this.loginPassResponse(text);
      default:
        return this.reject(Reply.badSequence);
    }
  }

  private plainResponse(b64: string): void {
    const bytes = b64 === "=" ? new Uint8Array(0) : decodeBase64(b64);
    if (bytes === null) return this.reject(Reply.authBadBase64);
    const creds = decodePlain(bytes);
    if (creds === "malformed") return this.reject(Reply.authBadBase64);
    this.verify(creds.user, creds.password);
  }

  private loginUserResponse(b64: string): void {
    const bytes = decodeBase64(b64);
    const user = bytes && decodeText(bytes);
    if (user === null || user === "") {
      this.phase = "command";
      return this.reject(Reply.authBadBase64);
    }
    this.loginUser = user;
    this.phase = "authLoginPass";
    this.reply(LOGIN_PASS_PROMPT);
  }

  private loginPassResponse(b64: string): void {
    const bytes = decodeBase64(b64);
    const password = bytes && decodeText(bytes);
    if (password === null) return this.reject(Reply.authBadBase64);
    this.verify(this.loginUser, password);
  }

  private verify(user: string, password: string): void {
    const ip = this.conn.remoteAddress;
    const slow = this.deps.auth.ipStatus(ip) === "delay";
    this.enterBusy();
    const check = user === "" ? Promise.resolve(null) : this.deps.auth.verify(user, password);
    const settled = slow ? Promise.all([check, this.deps.clock.delay(AUTH_DELAY_MS)]).then(([r]) => r) : check;
    settled.then(
      (canonical) => {
        this.deps.metrics.auth(this.settings.listener, canonical !== null);
        if (canonical !== null) {
          this.v.authUser = canonical;
          this.rxPrefix = null;
          this.deps.log.info("smtp.auth", { client: ip, listener: this.settings.listener, user: canonical });
          return this.leaveBusy(Reply.authOk);
        }
        this.authFailures++;
        this.deps.auth.recordFailure(ip);
        this.deps.log.warn("smtp.auth_failed", { client: ip, listener: this.settings.listener, user });
        if (this.authFailures >= this.settings.maxAuthFailures) {
          this.phase = "command";
          this.deps.metrics.rejected("421");
          return this.closeWith(Reply.tooManyAuthFailures);
        }
        // A failed AUTH is also a client error (CONTRACT max_errors), answered like the others.
        this.errors++;
        if (this.errors >= this.settings.maxErrors) {
          this.phase = "command";
          this.deps.metrics.rejected("421");
          return this.closeWith(Reply.tooManyErrors);
        }
        this.deps.metrics.rejected("535");
        if (this.errors <= this.settings.errorDelayAfter) return this.leaveBusy(Reply.authFailed);
        this.pausedForDelay = true;
        this.conn.pause();
        this.deps.clock.delay(ERROR_DELAY_MS).then(() => {
          this.pausedForDelay = false;
          this.leaveBusy(Reply.authFailed);
          this.resumeIfFree();
        });
      },
      (err: unknown) => {
        this.deps.log.error("auth.error", { client: ip, error: String(err) });
        this.leaveBusy(Reply.authBlocked);
      },
    );
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  private enterBusy(): void {
    this.phase = "busy";
  }

  /** An asynchronous step finished: reply, then process what arrived meanwhile. */
  private leaveBusy(reply: string | null): void {
    this.finishBusy(() => {
      if (reply !== null) this.reply(reply);
    });
  }

  /** An asynchronous step finished: `act` (queue its reply), then process what arrived meanwhile. */
  private finishBusy(act: () => void): void {
    if (this.phase !== "busy") return; // closed meanwhile
    this.phase = "command";
    act();
    if ((this.phase as Phase) === "closed") return;
    if (this.draining && this.sender === null) {
      this.closeWith(Reply.shutdown);
      return;
    }
    const rest = this.stash;
    this.stash = null;
    if (rest) this.feed(rest, this.deps.clock.now());
    else this.flush();
    if (this.pausedForStash && (this.phase as Phase) !== "busy") {
      this.pausedForStash = false;
      this.resumeIfFree();
    }
  }

  /** Observers of a message that will not end are told so (end() was never called on them). */
  private dropObservers(): void {
    const observers = this.observers;
    if (observers.length === 0) return;
    this.observers = NO_OBSERVERS;
    for (let i = 0; i < observers.length; i++) observers[i]!.abort?.();
  }

  private resetTransaction(): void {
    this.abortMessage();
    this.sender = null;
    this.mailParams = null;
    if (this.recipients.length) this.recipients = [];
    this.seen = null;
    this.tx = null;
    this.dropObservers();
    this.rcptCount = 0;
    this.bdatActive = false;
    this.bdatDiscard = null;
    this.tooBig = false;
  }

  private abortMessage(): void {
    if (this.sink) {
      this.sink.abort();
      this.sink = null;
    }
  }

  private reply(line: string): void {
    const bytes = replyBytes(line);
    if (this.out === null) this.out = bytes;
    else (this.outMore ??= []).push(bytes);
  }

  private reject(line: string): void {
    if (isClientError(line)) return this.clientError(line);
    this.deps.metrics.rejected(line.slice(0, 3));
    this.reply(line);
  }

  /**
   * An error reply of the client's making (Postfix smtpd_soft_error_limit / smtpd_hard_error_limit; CONTRACT
   * error_delay_after, max_errors). The max_errors-th is 421 4.7.0 and the end of the session. Past
   * error_delay_after each one is held back ERROR_DELAY_MS on a timer of this session alone: the session is busy
   * and its socket paused (the loop serves others meanwhile); the reply goes out and reading resumes after it.
   */
  private clientError(line: string): void {
    this.errors++;
    if (this.errors >= this.settings.maxErrors) {
      this.deps.metrics.rejected("421");
      this.deps.log.warn("smtp.too_many_errors", { client: this.conn.remoteAddress, listener: this.settings.listener, errors: this.errors });
      return this.closeWith(Reply.tooManyErrors);
    }
    this.deps.metrics.rejected(line.slice(0, 3));
    if (this.errors <= this.settings.errorDelayAfter) return this.reply(line);
    this.flush();
    this.enterBusy();
    this.pausedForDelay = true;
    this.conn.pause();
    this.deps.clock.delay(ERROR_DELAY_MS).then(() => {
      this.pausedForDelay = false;
      this.leaveBusy(line);
      this.resumeIfFree();
    });
  }

  /** One write for everything queued (RFC 2920 §3.2: the replies of a pipelined group go out together). */
  private flush(): void {
    const first = this.out;
    if (first === null) return;
    let bytes = first;
    const more = this.outMore;
    if (more !== null) {
      let n = first.length;
      for (const m of more) n += m.length;
      bytes = new Uint8Array(n);
      bytes.set(first, 0);
      let off = first.length;
      for (const m of more) {
        bytes.set(m, off);
        off += m.length;
      }
      this.outMore = null;
    }
    this.out = null;
    this.conn.write(bytes);
    if (this.conn.pendingWrite >= WRITE_HIGH_WATER && !this.pausedForWrite) {
      this.pausedForWrite = true;
      this.conn.pause();
    }
  }

  private closeWith(line: string): void {
    this.reply(line);
    this.flush();
    this.abortMessage();
    this.phase = "closed";
    this.rest = null;
    this.stash = null;
    // Read on (and drop) what the client still sends while our last reply goes out: closing a socket with unread
    // input resets the connection, and a reset can destroy that reply before the client reads it.
    if (this.pausedForWrite || this.pausedForStash || this.pausedForTurn || this.pausedForDelay) this.conn.resume();
    this.conn.end();
  }
}
