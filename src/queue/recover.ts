/**
 * The start-up scan of the spool. Runs before any listener accepts or any worker delivers, so it may rename and
 * delete freely: first every live segment record is written out as <id>.msg and the segments are deleted
 * (recoverSegments), then stray <id>.tmp files (a session that never reached 250) are deleted, items that fail validation
 * go to corrupt/ (logged, never fatal), orphan <id>.state files are deleted, finished items are cleaned up, and
 * every item with recipients still to deliver is returned for delivery.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Envelope } from "../mail/index.ts";
import { FILE_MODE, fsyncDirSync, mkdirDurableSync, unlinkQuiet, writeAllSync } from "../fsio/index.ts";
import { CorruptItemError } from "./item-format.ts";
import { isQueueId } from "./queue-id.ts";
import { isFinal } from "./state-log.ts";
import type { RecipientState } from "./state-log.ts";
import { msgPath, openStored, statePath } from "./stored.ts";
import { donePath, listSegments, readDoneIds, readSegment, segmentDir, segPath } from "./segment.ts";

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
  /** Live segment records written out as <id>.msg (they are in items or finished too). */
  fromSegments: number;
}

export interface RecoverLog {
  warn(event: string, fields: Record<string, unknown>): void;
}

/**
 * Write every live record of every segment out as <id>.msg (durably: file fsync, rename, directory fsync), then
 * delete the segments. A record is live unless its id is in the segment's done file or <id>.msg exists already.
 * A torn tail (a round that was never acknowledged) is logged and dropped. Returns how many items were written.
 */
export function recoverSegments(dir: string, log?: RecoverLog): number {
  const segs = listSegments(dir);
  let written = 0;
  for (const seg of segs) {
    const done = readDoneIds(donePath(dir, seg));
    const records = readSegment(segPath(dir, seg), (offset, size) =>
      log?.warn("queue.segment_tail", { segment: seg, offset, dropped_bytes: size - offset }),
    );
    for (const r of records) {
      if (done.has(r.id) || existsSync(msgPath(dir, r.id))) continue;
      const tmp = join(dir, `${r.id}.tmp`);
      const fd = openSync(tmp, "w", FILE_MODE);
      try {
        writeAllSync(fd, r.item);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, msgPath(dir, r.id));
      written++;
    }
  }
  if (written > 0) fsyncDirSync(dir);
  const sdir = segmentDir(dir);
  let names: string[] = [];
  try {
    names = readdirSync(sdir);
  } catch {
    // no segments directory: nothing was ever appended
  }
  for (const name of names) unlinkQuiet(join(sdir, name));
  if (names.length > 0) fsyncDirSync(sdir);
  return written;
}

export function recover(dir: string, log?: RecoverLog): RecoverResult {
  mkdirDurableSync(dir);
  const fromSegments = recoverSegments(dir, log);
  const result: RecoverResult = { items: [], finished: [], removed: [], corrupt: [], fromSegments };
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
