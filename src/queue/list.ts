/**
 * `queue list --json`, `queue show` and `queue delete` (CONTRACT "Commands", "Guarantees"): read-only or atomic,
 * so they are safe while the server runs and delivers from the same spool. Items still in a segment (small ones
 * waiting for their first attempt, segment.ts) are listed too; deleting one appends it to the segment's done file,
 * which a delivery worker checks before it starts.
 */
import { existsSync, readdirSync, unlinkSync } from "node:fs";
import { fsyncDirSync, unlinkQuiet } from "../fsio/index.ts";
import { replyLine } from "../mail/index.ts";
import { CorruptItemError } from "./item-format.ts";
import { isQueueId } from "./queue-id.ts";
import type { RecipientStatus } from "./state-log.ts";
import { msgPath, openStored, statePath, storedFromItem } from "./stored.ts";
import type { StoredItem } from "./stored.ts";
import { appendDone, donePath, listSegments, readDoneIds, readSegment, segPath } from "./segment.ts";

export interface QueueListEntry {
  id: string;
  arrival: string;
  size: number;
  sender: string;
  recipients: Array<{
    address: string;
    state: RecipientStatus;
    attempts: number;
    next_attempt: string | null;
    last_reply: string;
    /** The outbound TLS policy that governed the last attempt (dane, mta-sts, mta-sts-testing), when one did. */
    tls_policy?: string;
  }>;
}

/** Live segment records (not done, not written out as <id>.msg), by id, with the segment that holds each. */
function segmentItems(dir: string): Map<string, { seg: string; item: StoredItem }> {
  const out = new Map<string, { seg: string; item: StoredItem }>();
  for (const seg of listSegments(dir)) {
    let records;
    try {
      records = readSegment(segPath(dir, seg));
    } catch (err) {
      // Retired by the server between the listing and the read: its records are done.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    const done = readDoneIds(donePath(dir, seg));
    for (const r of records) {
      if (done.has(r.id) || existsSync(msgPath(dir, r.id))) continue;
      out.set(r.id, { seg, item: storedFromItem(r.item, r.id) });
    }
  }
  return out;
}

/** The entry for one item, or null when it is gone or unreadable. */
export function showItem(dir: string, id: string): QueueListEntry | null {
  if (!isQueueId(id)) return null;
  let item;
  try {
    item = openStored(dir, id) ?? segmentItems(dir).get(id)?.item ?? null;
  } catch (err) {
    // A corrupt or vanishing file is not listed; recover() deals with it at the next start.
    if (err instanceof CorruptItemError || (err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if (item === null) return null;
  return entryOf(item);
}

function entryOf(item: StoredItem): QueueListEntry {
  const id = item.id;
  return {
    id,
    arrival: new Date(item.envelope.arrival).toISOString(),
    size: item.size,
    sender: item.envelope.sender,
    recipients: item.envelope.recipients.map((r, i) => {
      const s = item.state[i];
      return {
        address: r.address,
        state: s.status,
        attempts: s.attempts,
        next_attempt: s.status === "deferred" && s.nextAttempt > 0 ? new Date(s.nextAttempt).toISOString() : null,
        // CONTRACT: the reply shape "451 4.3.0 text", made from the structured outcome.
        last_reply: s.last === null ? "" : replyLine(s.last),
        ...(s.last?.tlsPolicy !== undefined ? { tls_policy: s.last.tlsPolicy } : {}),
      };
    }),
  };
}

/** Every committed item, oldest first (ids sort by time). */
export function listQueue(dir: string): QueueListEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: QueueListEntry[] = [];
  for (const name of names) {
    if (!name.endsWith(".msg")) continue;
    const e = showItem(dir, name.slice(0, -4));
    if (e !== null) out.push(e);
  }
  for (const { item } of segmentItems(dir).values()) out.push(entryOf(item));
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Delete item `id` atomically: unlinking <id>.msg is the point where it is gone. False when it did not exist. */
export function deleteItem(dir: string, id: string): boolean {
  if (!isQueueId(id)) return false;
  try {
    unlinkSync(msgPath(dir, id));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return deleteFromSegment(dir, id);
    throw err;
  }
  unlinkQuiet(statePath(dir, id));
  fsyncDirSync(dir);
  return true;
}

/** A segment item is deleted by a durable line in its segment's done file. */
function deleteFromSegment(dir: string, id: string): boolean {
  const hit = segmentItems(dir).get(id);
  if (hit === undefined) return false;
  appendDone(donePath(dir, hit.seg), [id], true);
  return true;
}
