/** Messages between the Spool (event loop) and its writer thread (spool-writer.ts). */

export type WriterRequest =
  | { type: "init"; dir: string }
  /**
   * Make `<id>` durable. `fd` >= 0: the session already streamed the head of a large message into `<id>.tmp`
   * through this descriptor (fds are process-wide); the writer appends `tail`, fsyncs, renames and closes it.
   * `fd` = -1: the writer creates `<id>.tmp` with `tail` as the whole content.
   */
  | { type: "commit"; seq: number; id: string; fd: number; tail: Uint8Array };

export type WriterReply =
  | { type: "ready" }
  /** One answer per round; errors[i] belongs to seqs[i] (null when the whole round succeeded); ms: the round's
   *  write + fsync + rename + directory fsync time. */
  | { type: "done"; seqs: number[]; errors: Array<string | null> | null; ms: number };
