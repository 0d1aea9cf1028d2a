/**
 * `queue list --json`, `queue show` and `queue delete` (CONTRACT "Commands", "Guarantees"): read-only or atomic,
 * so they are safe while the server runs and delivers from the same spool.
 */
import { readdirSync, unlinkSync } from "node:fs";
import { fsyncDirSync, unlinkQuiet } from "../fsio/index.ts";
import { CorruptItemError } from "./item-format.ts";
import { isQueueId } from "./queue-id.ts";
import type { RecipientStatus } from "./state-log.ts";
import { msgPath, openStored, statePath } from "./stored.ts";

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
  }>;
}

/** The entry for one item, or null when it is gone or unreadable. */
export function showItem(dir: string, id: string): QueueListEntry | null {
  if (!isQueueId(id)) return null;
  let item;
  try {
    item = openStored(dir, id);
  } catch (err) {
    // A corrupt or vanishing file is not listed; recover() deals with it at the next start.
    if (err instanceof CorruptItemError || (err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if (item === null) return null;
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
        last_reply: s.lastReply,
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
  for (const name of names.sort()) {
    if (!name.endsWith(".msg")) continue;
    const e = showItem(dir, name.slice(0, -4));
    if (e !== null) out.push(e);
  }
  return out;
}

/** Delete item `id` atomically: unlinking <id>.msg is the point where it is gone. False when it did not exist. */
export function deleteItem(dir: string, id: string): boolean {
  if (!isQueueId(id)) return false;
  try {
    unlinkSync(msgPath(dir, id));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  unlinkQuiet(statePath(dir, id));
  fsyncDirSync(dir);
  return true;
}
