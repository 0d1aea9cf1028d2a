/**
 * The spool writer thread (a Worker entry): makes committed messages durable in group commits, so the event
 * loop that speaks SMTP never waits on the disk and never pays a threadpool hand-off per file operation.
 *
 * Each round takes every commit request that arrived while the previous round ran, then, with plain synchronous
 * calls on this thread: appends each small item as a record to the current segment in one write (segment.ts),
 * appends the tail of each large item to the `<id>.tmp` the session streamed its body into, makes all of it
 * durable at once (fsio flushSync: one syncfs for the round where the runtime offers it, else an fsync per file),
 * renames each large item to `<id>.msg`, makes the directory durable, and answers the whole round in one message.
 * Measured before the writer existed (bun --cpu-prof, strace -c under smtp-source 20 sessions): five threadpool
 * hand-offs and ~16 futex calls per message on the main thread; before segments, a file create, rename and unlink
 * per message.
 */
import { closeSync, fdatasyncSync, openSync, renameSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { setImmediate } from "node:timers";
import { FILE_MODE, flushSync, loadSyncFs, mkdirDurableSync, writeAllSync, writevAllSync, type SyncFs } from "../fsio/index.ts";
import { appendDone, donePath, encodeRecordHeader, RECORD_HEADER_LEN, SEGMENT_MAX, segmentDir, segmentLoc, segPath } from "./segment.ts";
import type { Commit, WriterReply, WriterRequest } from "./spool-writer-protocol.ts";

declare const self: {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};


let dir = "";
let segDir = "";
/** syncfs where the runtime offers it (one journal commit per round), else null: an fsync per file. */
let syncfs: SyncFs | null = null;
let pending: Commit[] = [];
let scheduled = false;

/** The segment records are appended to; null until the first small commit (or after a rotation). */
let seg: { name: string; fd: number; length: number } | null = null;
let segCounter = 0;

/** A new segment and its (empty) done file. Its directory entry is flushed with the round that first uses it. */
function openSegment(): NonNullable<typeof seg> {
  for (;;) {
    const name = `${Date.now().toString(36)}${(segCounter++ % 1296).toString(36).padStart(2, "0")}`;
    let fd: number;
    try {
      fd = openSync(segPath(dir, name), "wx", FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw err;
    }
    closeSync(openSync(donePath(dir, name), "a", FILE_MODE));
    return { name, fd, length: 0 };
  }
}

function seal(sealed: string[]): void {
  if (seg === null) return;
  closeSync(seg.fd);
  sealed.push(seg.name);
  seg = null;
}

function round(): void {
  scheduled = false;
  const batch = pending;
  pending = [];
  const n = batch.length;
  const fds: number[] = new Array(n).fill(-1);
  const errors: Array<string | null> = new Array(n).fill(null);
  const locs: Array<string | null> = new Array(n).fill(null);
  const sealed: string[] = [];
  const tmpOf = (i: number): string => join(dir, `${batch[i]!.id}.tmp`);
  const t0 = performance.now();

  // Items held in memory: one writev of all their records at the end of the current segment.
  const pieces: Uint8Array[] = [];
  const inSegment: number[] = [];
  let created = false;
  let segWritten = false;
  for (let i = 0; i < n; i++) if (batch[i]!.fd < 0) inSegment.push(i);
  if (inSegment.length > 0) {
    try {
      if (seg === null) {
        seg = openSegment();
        created = true;
      }
      let at = seg.length;
      for (const i of inSegment) {
        const tail = batch[i]!.tail;
        locs[i] = segmentLoc(seg.name, at);
        pieces.push(encodeRecordHeader(tail.length), tail);
        at += RECORD_HEADER_LEN + tail.length;
      }
      seg.length += writevAllSync(seg.fd, pieces, seg.length);
      segWritten = true;
    } catch (e) {
      for (const i of inSegment) errors[i] = String(e);
    }
  }
  // Large items: the tail after the body the session streamed.
  for (let i = 0; i < n; i++) {
    const c = batch[i]!;
    if (c.fd < 0) continue;
    try {
      fds[i] = c.fd;
      writeAllSync(c.fd, c.tail);
    } catch (e) {
      errors[i] = String(e);
    }
  }
  const toFlush = fds.filter((fd, i) => fd >= 0 && errors[i] === null);
  if (segWritten) toFlush.push(seg!.fd);
  try {
    // Only the segment to flush: fdatasync(2) of that one file is exact (its size is data-relevant metadata) and
    // waits only for the segment's pages, where syncfs would also wait for the Maildir files the delivery workers
    // are writing at the same moment.
    if (segWritten && !created && toFlush.length === 1) fdatasyncSync(toFlush[0]!);
    else flushSync(syncfs, toFlush, created ? [segDir] : []);
  } catch (e) {
    for (let i = 0; i < n; i++) errors[i] ??= String(e);
  }
  let renamed = false;
  for (let i = 0; i < n; i++) {
    if (errors[i] !== null || fds[i]! < 0) continue;
    try {
      renameSync(tmpOf(i), join(dir, `${batch[i]!.id}.msg`));
      renamed = true;
    } catch (e) {
      errors[i] = String(e);
    }
  }
  if (renamed) {
    // The renames are durable only once the directory is (POSIX rename is atomic, not durable).
    try {
      flushSync(syncfs, [], [dir]);
    } catch (e) {
      // Nothing of this round may be acknowledged: take the renamed files back out.
      for (let i = 0; i < n; i++) {
        if (errors[i] !== null || fds[i]! < 0) continue;
        errors[i] = `directory sync failed: ${String(e)}`;
        try {
          unlinkSync(join(dir, `${batch[i]!.id}.msg`));
        } catch {
          // already gone
        }
      }
    }
  }
  // Records written but refused (the write or flush failed): void them, so that no restart delivers what the client was
  // told to send again; and start a new segment, the current one has an unknown tail now.
  const refused = inSegment.filter((i) => errors[i] !== null);
  if (refused.length > 0 && seg !== null) {
    try {
      appendDone(donePath(dir, seg.name), refused.map((i) => batch[i]!.id));
    } catch {
      // the disk is failing; recover() stops at the torn tail or materializes: the client's retry is the copy
    }
    seal(sealed);
  } else if (seg !== null && seg.length >= SEGMENT_MAX) {
    seal(sealed);
  }
  for (let i = 0; i < n; i++) {
    if (fds[i]! >= 0) {
      try {
        closeSync(fds[i]!);
      } catch {
        // fsync'd (or failed) already; nothing more to learn
      }
      if (errors[i] !== null) {
        try {
          unlinkSync(tmpOf(i));
        } catch {
          // renamed or never created
        }
      }
    }
    if (errors[i] !== null) locs[i] = null;
  }
  const reply: WriterReply = {
    type: "done",
    seqs: batch.map((c) => c.seq),
    errors: errors.some((e) => e !== null) ? errors : null,
    locs,
    sealed,
    ms: performance.now() - t0,
  };
  self.postMessage(reply);
}

/** Delete a sealed segment whose records are all done, and make that durable (a resurrected one would be re-read). */
function retire(name: string): void {
  for (const p of [segPath(dir, name), donePath(dir, name)]) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
  try {
    flushSync(syncfs, [], [segDir]);
  } catch {
    // recover() finds the records done (or delivered: the Maildir courier re-checks) at the next start
  }
}

self.onmessage = (e: MessageEvent): void => {
  const m = e.data as WriterRequest;
  switch (m.type) {
    case "init":
      dir = m.dir;
      segDir = segmentDir(dir);
      mkdirDurableSync(segDir);
      // Commits that arrive before this resolves are flushed file by file, which is exact too.
      void loadSyncFs().then((s) => {
        syncfs = s;
        self.postMessage({ type: "ready" } satisfies WriterReply);
      });
      return;
    case "commit":
      for (const c of m.commits) pending.push(c);
      // Let every message already queued for this thread join the round.
      if (!scheduled) {
        scheduled = true;
        setImmediate(round);
      }
      return;
    case "retire":
      retire(m.seg);
      return;
  }
};
