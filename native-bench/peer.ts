/** A server the comparison runs load against. */

export interface RunningPeer {
  port: number;
  /** Server pid (for RSS); the master process where there are several. */
  pid: number;
  /**
   * For a durable peer: the Maildir of `local`@bench.test, counted for the end-to-end wait. null: the peer
   * discards, and its rate is the accept rate.
   */
  maildir(local: string): string | null;
  /** Removes the Maildir of a finished run (keeps directories small between runs). */
  clean(local: string): void;
  stop(): Promise<void>;
}

export interface Peer {
  name: string;
  /** What it does with a message, for the table. */
  role: string;
  /** null when it can run here, else why not and how to install it. */
  missing(): string | null;
  start(): Promise<RunningPeer>;
}

/** The domain every peer accepts. */
export const BENCH_DOMAIN = "bench.test";

/** Mailboxes compare may use, one per run (Postfix needs them listed in advance). */
export const RUN_MAILBOXES = 4000;

/** The localpart of run i (1-based): run1 … run4000. */
export function runLocal(i: number): string {
  return `run${i}`;
}
