/**
 * What the delivery worker does to the spool after an attempt, both grouped through the shared SyncBatcher:
 * record outcomes in <id>.state (fsync'd before the result is reported), or, when every recipient is delivered,
 * remove the item. Removal unlinks <id>.msg first (the atomic point where the item is gone) and fsyncs the spool
 * directory, so that a crash cannot bring a delivered item back; were it to come back anyway, the Maildir
 * courier's deterministic names still recognise the copy already delivered.
 */
import { existsSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { SyncBatcher } from "../fsio/index.ts";
import { appendStateRecords } from "./state-log.ts";
import type { StateRecord } from "./state-log.ts";
import { msgPath, statePath } from "./stored.ts";

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
