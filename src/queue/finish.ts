/**
 * What the delivery worker does to the spool after an attempt, both grouped through the shared SyncBatcher:
 * record outcomes in <id>.state (fsync'd before the result is reported), or, when every recipient is delivered,
 * remove the item. Removal unlinks <id>.msg first (the atomic point where the item is gone) and fsyncs the spool
 * directory, so that a crash cannot bring a delivered item back; were it to come back anyway, the Maildir
 * courier's deterministic names still recognise the copy already delivered.
 */
import { closeSync, existsSync, openSync, renameSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { FILE_MODE, writeAllSync } from "../fsio/index.ts";
import type { SyncBatcher } from "../fsio/index.ts";
import type { SegmentReader } from "./segment.ts";
import { appendStateRecords } from "./state-log.ts";
import type { StateRecord } from "./state-log.ts";
import { msgPath, statePath } from "./stored.ts";

/**
 * Write segment item `id` (its record's bytes) out as `<id>.msg` with the spool's commit steps (temp file, flush,
 * rename, directory flush), then mark its record done and flush that: from here on it is a file item, which may
 * be finished (unlinked) later without the record coming back at the next start.
 */
export async function materializeItem(
  dir: string,
  segments: SegmentReader,
  seg: string,
  id: string,
  item: Uint8Array,
  batcher: SyncBatcher,
): Promise<void> {
  const tmp = join(dir, `${id}.tmp`);
  const fd = openSync(tmp, "w", FILE_MODE);
  try {
    writeAllSync(fd, item);
    await batcher.syncFd(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, msgPath(dir, id));
  await batcher.syncDir(dir);
  await batcher.syncFd(segments.markDone(seg, id));
}

export async function recordOutcomes(
  dir: string,
  id: string,
  records: readonly StateRecord[],
  batcher: SyncBatcher,
): Promise<void> {
  const path = statePath(dir, id);
  // Deleted meanwhile (`queue delete` while a worker held it): do not leave an orphan .state behind.
  if (!existsSync(msgPath(dir, id))) return;
  const { created } = await appendStateRecords(path, records, batcher);
  if (created) await batcher.syncDir(dirname(path));
}

/**
 * `hasState`: a state log may exist (else its unlink is skipped). `durable`: fsync the directory so the removal
 * survives a crash — needed when a remote recipient was delivered (a resurrected item would be relayed twice);
 * for Maildir-only items a resurrected copy is recognised by its deterministic file names, so the fsync is saved.
 */
export async function finishItem(
  dir: string,
  id: string,
  batcher: SyncBatcher,
  opts: { hasState: boolean; durable: boolean } = { hasState: true, durable: true },
): Promise<void> {
  unlinkIfPresent(msgPath(dir, id));
  if (opts.hasState) unlinkIfPresent(statePath(dir, id));
  if (opts.durable) await batcher.syncDir(dir);
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
