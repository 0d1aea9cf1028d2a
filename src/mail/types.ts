/**
 * The shared kernel of ringmta (ARCHITECTURE "mail/"): what inbound (session, stages → spool) and delivery
 * (workers → couriers) both speak.
 * Types only: every layer may import these with `import type`.
 */

/** Where one final mailbox of a transaction goes. */
export type Route =
  | { kind: "local"; domain: string; localPart: string } // DATA/mail/<domain>/<localPart>/ (both lower-cased)
  | { kind: "remote"; domain: string }; // relayed (issue: outbound)

/**
 * Where mail we generate ourselves (a DSN) to an address goes: its targets, nowhere (an unknown local user), or
 * not known now (the directory is unavailable: the notice waits).
 */
export type OwnRoute =
  | { kind: "accept"; targets: Array<{ address: string; route: Route }> }
  | { kind: "nowhere" }
  | { kind: "later" };

/** One final delivery target of a transaction (after alias expansion and de-duplication). */
export interface EnvelopeRecipient {
  /** The address as given in RCPT TO (DSN Original-Recipient when no ORCPT). */
  rcpt: string;
  /** The final address delivered to (Delivered-To for local). Equals rcpt unless an alias expanded it. */
  address: string;
  route: Route;
  /** RFC 3461 ORCPT as "type;xtext-decoded-address", when given. */
  orcpt?: string;
  /** RFC 3461 NOTIFY values, upper-case, when given. */
  notify?: Array<"NEVER" | "SUCCESS" | "FAILURE" | "DELAY">;
  /**
   * The envelope sender (MAIL FROM) of this recipient's copy when it is not Envelope.sender: the SRS0 address of a
   * copy forwarded to an alias target outside local.domains (CONTRACT "Forwarding"). Decided once, by the policy
   * at RCPT, and stored with the item, so a retry days later sends the same address (its timestamp is the day of
   * acceptance). Absent (as in every item spooled before it existed) = Envelope.sender. DSNs always go to
   * Envelope.sender, the original sender, never to this address.
   */
  sender?: string;
}

/** Everything we know about a message besides its bytes. Stored with the message in the spool. */
export interface Envelope {
  /** Envelope sender, "" for the null path <>. */
  sender: string;
  recipients: EnvelopeRecipient[];
  /** MAIL FROM parameters kept for delivery and DSN (RFC 1652, 3030, 3461, 6531). */
  body: "7BIT" | "8BITMIME" | "BINARYMIME";
  smtputf8: boolean;
  ret?: "FULL" | "HDRS";
  envid?: string;
  /** RFC 8689 REQUIRETLS: relayed only over verified TLS to a server offering REQUIRETLS, else returned (5.7.30). */
  requireTls?: boolean;
  /** Who handed it to us. */
  client: {
    address: string;
    helo: string;
    listener: string;
    /** e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", absent on plaintext. */
    tls?: string;
    /** The authenticated identity (RFC 4954), never written into headers. */
    authUser?: string;
  };
  /** Milliseconds since the epoch at which the message was accepted (set by the spool at commit). */
  arrival: number;
  /**
   * A Maildir++ folder for local delivery, e.g. ".Junk" (CONTRACT "Storage layout"): `.` then [A-Za-z0-9_-]+;
   * absent = the inbox.
   */
  folder?: string;
}

/**
 * The result of one delivery attempt to one recipient, structured once where it is made (a remote reply as it was
 * read off the wire, or a failure of our own) and never parsed back from text: `code` is the SMTP reply code
 * (RFC 5321 §4.2), `enhanced` the RFC 3463 status "class.subject.detail", `text` one line without the codes.
 * `remoteMta` is set only when these are a reply that a remote server actually sent (RFC 3464 §2.3.5 Remote-MTA);
 * a failure made up here (connect, TLS, DNS, a parameter we refuse to send) has none. `relayed`: delivered to a
 * server that does not offer DSN, so a NOTIFY=SUCCESS sender gets a "relayed" DSN from us (RFC 3461 §5.2.2).
 */
export interface Outcome {
  kind: "delivered" | "deferred" | "failed"; // deferred: temporary, retry later; failed: permanent, bounce
  code: number;
  enhanced: string;
  text: string;
  remoteMta?: string;
  relayed?: boolean;
  /**
   * The outbound TLS policy that governed this attempt (CONTRACT "Outbound TLS policy"), when one did: DANE,
   * MTA-STS enforce, or MTA-STS testing (delivered whatever the TLS, but counted and logged).
   */
  tlsPolicy?: "dane" | "mta-sts" | "mta-sts-testing";
  /** What TLS-RPT (RFC 8460) counts of this attempt, when relay.tls_rpt is on and a policy applied. */
  tlsRpt?: TlsRptResult;
}

/** One TLS session (or failure to have one) under a policy, as RFC 8460 §4.4 reports it. */
export interface TlsRptResult {
  /** The policy domain: the recipient domain whose policy applied. */
  domain: string;
  policyType: "sts" | "tlsa";
  /** §4.4 policy-string: the MTA-STS policy lines, or the TLSA records in presentation form. */
  policyString: string[];
  mxHost: string;
  receivingIp?: string;
  /** §4.3 result-type of a failure (starttls-not-supported, certificate-host-mismatch, …); absent = success. */
  failure?: string;
}

/** Per-recipient outcomes as they come: `indices` into the recipients handed to Courier.deliver. */
export type OutcomeReport = (indices: number[], outcomes: Outcome[]) => Promise<void> | void;

/** A message as a courier sees it: the envelope and a way to read the stored bytes. */
export interface StoredMessage {
  id: string;
  envelope: Envelope;
  /** Size in bytes of the message as delivered: prepended header fields, then the stored bytes. */
  size: number;
  /**
   * The message bytes in order, in chunks: the header fields the inbound stages prepended (if any), then the stored
   * bytes (our Received header first).
   */
  chunks(): Iterable<Uint8Array>;
}

/** How one attempt is made (Courier.deliver). */
export interface DeliveryAttempt {
  /**
   * Called with outcomes as they come (indices into the recipients given), before deliver() resolves: a remote
   * destination's 250 can be recorded at once, not after another destination's transaction (CONTRACT: the
   * duplicate window). Every recipient is reported exactly once.
   */
  report?: OutcomeReport;
  /**
   * An earlier attempt may have delivered some of these recipients without its outcome being recorded (a crash,
   * a worker that died, a retry): an exactly-once courier looks for its earlier copy first.
   */
  recheck?: boolean;
}

/**
 * A way to deliver (local Maildir, remote SMTP), chosen by route kind in one setup module (delivery/services.ts).
 * The whole contract; nothing is looked up on a courier beyond it.
 */
export interface Courier {
  readonly name: string;
  /**
   * True when delivering again what an earlier attempt already delivered cannot make a second copy (Maildir: the
   * file name is a function of queue id and recipient index, so a re-check finds the copy). The queue then needs
   * no flush of an outcome before it moves on. False for remote SMTP: a second transaction is a duplicate, so its
   * outcomes must be durable at once.
   */
  readonly exactlyOnce: boolean;
  /**
   * Deliver `message` to `recipients` (elements of message.envelope.recipients). Resolves with one outcome per
   * recipient, in order, after every one was reported; never rejects for a delivery problem (that is an outcome).
   */
  deliver(message: StoredMessage, recipients: EnvelopeRecipient[], attempt?: DeliveryAttempt): Promise<Outcome[]>;
  /** End what the courier holds open (idle connections); it is not used afterwards. */
  close(): void;
}

// ---- the spool as the session writes to it (implemented by queue/, used by session/) ---------------------------

/** A message being received: bytes stream to disk as they arrive (memory stays bounded whatever the size). */
export interface MessageSink {
  /** The queue id, assigned at begin() so that the Received header can name it. */
  readonly id: string;
  /** Bytes written so far. */
  readonly size: number;
  /** Append bytes. The sink copies what it keeps; the caller may reuse `bytes` afterwards. */
  write(bytes: Uint8Array): void;
  /**
   * Store the envelope with the bytes and make both durable (fsync'd, renamed into the spool, directory fsync'd).
   * Resolves only then; afterwards the message is handed to delivery. Rejects on any I/O error (nothing queued).
   * `prepend`: complete header fields (CRLF-terminated) that the inbound stages add at end of data; they are stored
   * with the item and delivered before the received bytes.
   */
  commit(envelope: Envelope, prepend?: Uint8Array): Promise<void>;
  /** Discard everything written (RSET, size exceeded, client gone, 5xx at end of data). Idempotent. */
  abort(): void;
}

export interface SpoolPort {
  begin(): MessageSink;
}
