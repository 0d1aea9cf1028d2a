/**
 * Inbound message stages: the contract between the SMTP session and whatever acts between accept and spool
 * (ARCHITECTURE "inbound/"): the hop counter, defences (pregreet, DNSBL, rate limits, greylisting), SPF, DKIM/ARC
 * verification, DMARC, DKIM signing, SRS. app/ builds an ordered list of stages; the session opens each one per
 * connection and calls its hooks at connect, HELO, MAIL, RCPT, while the body streams and at end of data.
 *
 * A hook answers synchronously or with a promise. A synchronous answer costs the session nothing; a promise puts
 * the session in its busy phase until it settles, so pipelined replies keep their order (RFC 2920). Hooks run in
 * stage order and the first reply wins: later stages are not asked. A hook that throws (or rejects) is answered
 * with 451 4.3.0 (a local error, never a 5xx) and logged by the session.
 *
 * Types only: every layer may import them.
 */

/** A reply line (e.g. "554 5.7.1 Client host rejected") that replaces the command's normal reply; null: go on. */
export type Verdict = string | null;

export type MaybePromise<T> = T | Promise<T>;

/** What a stage may read of its session. The session keeps it current; stages must not write it. */
export interface SessionView {
  /** The client's address (the PROXY header's source where one was read). */
  readonly clientAddress: string;
  /** The listener's configured name ("mx", "submission", ...). */
  readonly listener: string;
  /** The HELO/EHLO name as given, null before one. */
  readonly helo: string | null;
  /** "TLSv1.3 TLS_AES_256_GCM_SHA384" under TLS, undefined on plaintext. */
  readonly tls: string | undefined;
  /** The authenticated identity (RFC 4954), undefined before a successful AUTH. */
  readonly authUser: string | undefined;
  /** Bytes received from the client so far (e.g. pregreet: did it talk before the banner?). */
  readonly bytesReceived: number;
}

/** A recipient as RCPT TO gave it, after the policy accepted it. */
export interface StageRecipient {
  /** localPart@domain as parsed (domain in the client's case). */
  readonly address: string;
  readonly localPart: string;
  readonly domain: string;
  /** The final addresses it expands to (aliases), lower-cased as delivered. */
  readonly targets: ReadonlyArray<string>;
}

/** What a stage's end-of-data answer does to the message. */
export type EndVerdict =
  /** Refuse the message: nothing is stored, the client gets `reply` (e.g. "550 5.7.1 ..."). */
  | { kind: "reject"; reply: string; log?: Readonly<Record<string, unknown>> }
  /**
   * Accept, with header fields to put on top of the message (each ending in CRLF; the spool stores them with the
   * item and writes them above our Received field) and/or the Maildir++ folder for local copies (".Junk").
   */
  | {
      kind: "accept";
      prepend?: string;
      folder?: string;
      /** Fields for the message's `smtp.accepted` log line (e.g. the check results), merged in stage order. */
      log?: Readonly<Record<string, unknown>>;
    }
  /** Nothing to add. */
  | null;

/** Sees one message's body as it streams, then answers at its end. */
export interface MessageObserver {
  /**
   * Body bytes as the spool keeps them (after dot-unstuffing, without our Received field), in order. The bytes are
   * only lent for the call: copy what must be kept. Never called after the size limit was exceeded.
   */
  write(bytes: Uint8Array): void;
  /** End of data (or BDAT LAST) of a message that is within the size limit. */
  end(): MaybePromise<EndVerdict>;
  /** The message will not end (RSET, size exceeded, connection gone): release what is held. */
  abort?(): void;
}

/** The transaction at the start of message data. */
export interface StageTransaction {
  /** Envelope sender, "" for <>. */
  readonly sender: string;
  readonly recipients: ReadonlyArray<StageRecipient>;
  readonly smtputf8: boolean;
}

/** One connection's hooks of a stage; every hook is optional. */
export interface StageSession {
  /** Before the banner. A reply replaces the banner and closes the connection. */
  connect?(): MaybePromise<Verdict>;
  /** HELO/EHLO, before the session answers it. */
  helo?(name: string): MaybePromise<Verdict>;
  /** MAIL FROM, after the session's own checks passed; also marks the start of a new transaction. */
  mail?(sender: string): MaybePromise<Verdict>;
  /** RCPT TO, after the policy accepted the recipient. */
  rcpt?(recipient: StageRecipient, sender: string): MaybePromise<Verdict>;
  /** DATA or the first BDAT: an observer for this message's body, or null when the stage needs none. */
  message?(tx: StageTransaction): MessageObserver | null;
  /** The connection is gone. */
  close?(): void;
}

export interface Stage {
  readonly name: string;
  /** Per connection: its hooks, or null when the stage has nothing to do for this connection. */
  open(view: SessionView): StageSession | null;
}
