/**
 * The ports through which a session reaches the world. The session imports no implementation; app/ hands it
 * objects that satisfy these.
 */
import type { Envelope, Route } from "../mail/index.ts";

export type { MessageSink, SpoolPort } from "../mail/index.ts";

/** What RCPT TO turns into. */
export type RcptDecision =
  // `sender`: this target's copy goes out with this MAIL FROM (SRS forwarding; EnvelopeRecipient.sender).
  | { kind: "accept"; targets: Array<{ address: string; route: Route; sender?: string }> }
  | { kind: "unknownUser" } // 550 5.1.1
  | { kind: "srsInvalid"; reason: "forged" | "expired" } // 550 5.1.1: an SRS0 address we did not make, or too old
  | { kind: "relayDenied" } // 554 5.7.1
  | { kind: "unwritable" } // 553 5.1.3: the folded mailbox name does not fit the file system
  | { kind: "tempfail" }; // 451 4.3.0: the directory is unavailable (CONTRACT: never a 5xx then)

export interface RcptContext {
  clientAddress: string;
  authUser: string | undefined;
  /** The transaction's MAIL FROM ("" = <>); given, a forwarded copy may get an SRS sender. */
  sender?: string;
}

export interface PolicyPort {
  /** Decide a recipient; `address` is localPart@domain as parsed (domain may be any case). */
  recipient(localPart: string, domain: string, ctx: RcptContext): RcptDecision;
  /** RFC 4954 + CONTRACT: may this authenticated user use `sender` ("" = <>) as MAIL FROM? */
  senderAllowed(authUser: string, sender: string): boolean;
}

/** SASL credential check; async because hashing is slow (argon2id ≈ 120 ms) and runs off the event loop. */
export interface AuthPort {
  /** Resolves to the canonical user name on success, null on bad credentials; rejects when the users cannot be
   *  checked now (the directory is unavailable): 454 4.7.0, not counted as a failure. */
  verify(user: string, password: string): Promise<string | null>;
  /** Brute-force state of a client address across connections (CONTRACT: auth_ip_* limits). */
  ipStatus(clientAddress: string): "ok" | "delay" | "blocked";
  recordFailure(clientAddress: string): void;
}

export interface LogPort {
  info(event: string, fields: Record<string, unknown>): void;
  warn(event: string, fields: Record<string, unknown>): void;
  error(event: string, fields: Record<string, unknown>): void;
}

export interface Clock {
  now(): number; // ms since epoch
  /** Resolve after ms (the AUTH brute-force delay, the error delay). */
  delay(ms: number): Promise<void>;
  /**
   * Run fn on a later turn of the event loop, after pending I/O (setImmediate): a session that has had its share
   * of bytes for this turn goes on there (CONTRACT "Fairness").
   */
  defer(fn: () => void): void;
}

/** Counters the session moves (observe/ implements them as Prometheus metrics). */
export interface SessionMetrics {
  accepted(listener: string, bytes: number): void;
  rejected(code: string): void;
  auth(listener: string, ok: boolean): void;
  tlsHandshake(listener: string, ok: boolean): void;
}
