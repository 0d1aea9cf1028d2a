/**
 * The start-up scan of the spool. Runs before any listener accepts or any worker delivers, so it may rename and
 * delete freely: stray <id>.tmp files (a session that never reached 250) are deleted, items that fail validation
 * go to corrupt/ (logged, never fatal), orphan <id>.state files are deleted, finished items are cleaned up, and
 * every item with recipients still to deliver is returned for delivery.
 */
import { readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Envelope } from "../delivery/types.ts";
import { fsyncDirSync, mkdirDurableSync, unlinkQuiet } from "../fsio/index.ts";
import { CorruptItemError } from "./item-format.ts";
import { isQueueId } from "./queue-id.ts";
import { isFinal } from "./state-log.ts";
import type { RecipientState } from "./state-log.ts";
import { msgPath, openStored, statePath } from "./stored.ts";

export interface RecoveredItem {
  id: string;
  envelope: Envelope;
  size: number;
  state: RecipientState[];
}

export interface RecoverResult {
  /** Items with at least one recipient neither delivered nor failed, oldest id first. */
  items: RecoveredItem[];
  /** Every recipient done and at least one failed: still in the spool, waiting for its bounce. */
  finished: RecoveredItem[];
  /** File names deleted (stray .tmp, orphan .state, fully delivered items). */
  removed: string[];
  /** File names moved to corrupt/. */
  corrupt: string[];
}

export interface RecoverLog {
  warn(event: string, fields: Record<string, unknown>): void;
}

export function recover(dir: string, log?: RecoverLog): RecoverResult {
  mkdirDurableSync(dir);
  const result: RecoverResult = { items: [], finished: [], removed: [], corrupt: [] };
  const names = readdirSync(dir).sort();
  const msgIds = new Set<string>();
  for (const name of names) if (name.endsWith(".msg")) msgIds.add(name.slice(0, -4));
  const corruptDir = join(dir, "corrupt");

  for (const name of names) {
    const dot = name.lastIndexOf(".");
    const ext = dot < 0 ? "" : name.slice(dot);
    const id = dot < 0 ? name : name.slice(0, dot);
    if (ext === ".tmp") {
      unlinkQuiet(join(dir, name));
      result.removed.push(name);
    } else if (ext === ".state" && !msgIds.has(id)) {
      unlinkQuiet(join(dir, name));
      result.removed.push(name);
    } else if (ext === ".msg") {
      let item;
      try {
        if (!isQueueId(id)) throw new CorruptItemError("file name is not a queue id");
        item = openStored(dir, id);
      } catch (err) {
        mkdirDurableSync(corruptDir);
        for (const f of [name, `${id}.state`]) {
          try {
            renameSync(join(dir, f), join(corruptDir, f));
            if (f === name) result.corrupt.push(f);
          } catch {
            // .state may not exist
          }
        }
        log?.warn("queue.corrupt", { id, file: name, reason: err instanceof Error ? err.message : String(err) });
        continue;
      }
      if (item === null) continue;
      const entry = { id, envelope: item.envelope, size: item.size, state: item.state };
      if (!item.state.every(isFinal)) result.items.push(entry);
      else if (item.state.some((s) => s.status === "failed")) result.finished.push(entry);
      else {
        unlinkQuiet(msgPath(dir, id));
        unlinkQuiet(statePath(dir, id));
        result.removed.push(name);
      }
    }
  }
  if (result.corrupt.length > 0) {
    fsyncDirSync(corruptDir);
  }
  if (result.removed.length > 0 || result.corrupt.length > 0) fsyncDirSync(dir);
  return result;
}
