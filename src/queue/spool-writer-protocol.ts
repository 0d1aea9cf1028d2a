/** Messages between the Spool (event loop) and its writer thread (spool-writer.ts). */

/**
 * Make `<id>` durable. `fd` >= 0: the session already streamed the head of a large message into `<id>.tmp`
 * through this descriptor (fds are process-wide); the writer appends `tail`, fsyncs, renames and closes it.
 * `fd` = -1: `tail` is the whole item; the writer appends it as a record to the current segment (segment.ts).
 */
export interface Commit {
  seq: number;
  id: string;
  fd: number;
  tail: Uint8Array;
}

export type WriterRequest =
  | { type: "init"; dir: string }
  /** The commits made during one turn of the event loop, in one message. */
  | { type: "commit"; commits: Commit[] }
  /** Every record of sealed segment `seg` is done: delete it. */
  | { type: "retire"; seg: string };

export type WriterReply =
  | { type: "ready" }
  /**
   * One answer per round; errors[i] belongs to seqs[i] (null when the whole round succeeded); locs[i] is the
   * item's segment location `<seg>:<offset>` (null for an item written as `<id>.msg`); sealed: segments rotated in
   * this round (no record is added to them again); ms: the round's write + flush + rename time.
   */
  | { type: "done"; seqs: number[]; errors: Array<string | null> | null; locs: Array<string | null>; sealed: string[]; ms: number };
