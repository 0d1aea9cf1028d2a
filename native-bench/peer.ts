/** A server the comparison runs load against. */

export interface RunningPeer {
  port: number;
  /** The exact command line that started it (printed in RESULTS.md). */
  command: string;
  /** Server pid (for RSS); the master process where there are several. */
  pid: number;
  /**
   * For a durable peer: the Maildir of `local`@bench.test, counted for the end-to-end wait. null: the peer
   * discards, and its rate is the accept rate.
   */
  maildir(local: string): string | null;
  /** Stops the server; its files stay until remove(). */
  stop(): Promise<void>;
  /**
   * Deletes what the peer wrote. compare calls it only after every peer is measured: on this machine's ext4, each
   * file created within about a minute after a mass deletion pays for a scan past the freed inodes (the kernel's
   * recently_deleted() check in inode allocation; measured up to 820 µs per create instead of 20 µs), so a deletion
   * between runs would slow whoever runs next.
   */
  remove(): void;
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
