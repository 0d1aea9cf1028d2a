/**
 * Spool fixtures for unit tests. commitMessages goes through the real Spool (writer thread, segment records);
 * with `asFiles` the records are then written out as <id>.msg by recoverSegments, exactly as a restart does, for
 * tests about file items (recovery, state logs, corrupt files, couriers reading a stored item).
 */
import type { Envelope } from "../../src/mail/index.ts";
import { recoverSegments, Spool } from "../../src/queue/index.ts";
import type { CommittedItem } from "../../src/queue/index.ts";

export interface Fixture {
  body: Uint8Array | string;
  envelope: Envelope;
  /** Header fields as an inbound stage prepends them (MessageSink.commit's second argument). */
  prepend?: string;
}

/** Commit `items` concurrently (they share group-commit rounds); returns them in the order given. */
export async function commitMessages(dir: string, items: Fixture[], opts: { asFiles?: boolean } = {}): Promise<CommittedItem[]> {
  const committed = new Map<string, CommittedItem>();
  const spool = new Spool({ dir, onCommitted: (c) => committed.set(c.id, c) });
  let ids: string[];
  try {
    ids = await Promise.all(
      items.map(async (it) => {
        const sink = spool.begin();
        sink.write(typeof it.body === "string" ? new TextEncoder().encode(it.body) : it.body);
        await sink.commit(it.envelope, it.prepend === undefined ? undefined : new TextEncoder().encode(it.prepend));
        return sink.id;
      }),
    );
  } finally {
    await spool.close();
  }
  if (opts.asFiles) recoverSegments(dir);
  return ids.map((id) => committed.get(id)!);
}
