/**
 * The spool writer thread (a Worker entry): makes committed messages durable in group commits, so the event
 * loop that speaks SMTP never waits on the disk and never pays a threadpool hand-off per file operation.
 *
 * Each round takes every commit request that arrived while the previous round ran, then, with plain synchronous
 * calls on this thread: create + write each `<id>.tmp` (or append the tail to a `.tmp` the session already
 * streamed a large body into), make them durable (fsio flushSync: one syncfs for the round where the runtime
 * offers it, else an fsync per file), rename each to `<id>.msg`, make the directory durable, close, and answer
 * the whole round in one message. Measured before this (bun --cpu-prof, strace -c under smtp-source 20 sessions): five
 * threadpool hand-offs and ~16 futex calls per message on the main thread.
 */
import { closeSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setImmediate } from "node:timers";
import { flushSync, loadSyncFs, type SyncFs } from "../fsio/index.ts";
import type { WriterReply, WriterRequest } from "./spool-writer-protocol.ts";

declare const self: {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};

const FILE_MODE = 0o600;

let dir = "";
/** syncfs where the runtime offers it (one journal commit per round), else null: an fsync per file. */
let syncfs: SyncFs | null = null;
let pending: Extract<WriterRequest, { type: "commit" }>[] = [];
let scheduled = false;

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

function round(): void {
  scheduled = false;
  const batch = pending;
  pending = [];
  const fds: number[] = new Array(batch.length).fill(-1);
  const errors: Array<string | null> = new Array(batch.length).fill(null);
  const tmpOf = (i: number): string => join(dir, `${batch[i]!.id}.tmp`);
  const t0 = performance.now();

  for (let i = 0; i < batch.length; i++) {
    const c = batch[i]!;
    try {
      fds[i] = c.fd >= 0 ? c.fd : openSync(tmpOf(i), "wx", FILE_MODE);
      writeAll(fds[i]!, c.tail);
    } catch (e) {
      errors[i] = String(e);
    }
  }
  const written = fds.filter((_, i) => errors[i] === null);
  try {
    flushSync(syncfs, written, []);
  } catch (e) {
    for (let i = 0; i < batch.length; i++) errors[i] ??= String(e);
  }
  let renamed = false;
  for (let i = 0; i < batch.length; i++) {
    if (errors[i] !== null) continue;
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
      for (let i = 0; i < batch.length; i++) {
        if (errors[i] !== null) continue;
        errors[i] = `directory sync failed: ${String(e)}`;
        try {
          unlinkSync(join(dir, `${batch[i]!.id}.msg`));
        } catch {
          // already gone
        }
      }
    }
  }
  for (let i = 0; i < batch.length; i++) {
    if (fds[i]! >= 0) {
      try {
        closeSync(fds[i]!);
      } catch {
        // fsync'd (or failed) already; nothing more to learn
      }
    }
    if (errors[i] !== null) {
      try {
        unlinkSync(tmpOf(i));
      } catch {
        // renamed or never created
      }
    }
  }
  const reply: WriterReply = {
    type: "done",
    seqs: batch.map((c) => c.seq),
    errors: errors.some((e) => e !== null) ? errors : null,
    ms: performance.now() - t0,
  };
  self.postMessage(reply);
}

self.onmessage = (e: MessageEvent): void => {
  const m = e.data as WriterRequest;
  switch (m.type) {
    case "init":
      dir = m.dir;
      // Commits that arrive before this resolves are flushed file by file, which is exact too.
      void loadSyncFs().then((s) => {
        syncfs = s;
        self.postMessage({ type: "ready" } satisfies WriterReply);
      });
      return;
    case "commit":
      pending.push(m);
      // Let every message already queued for this thread join the round.
      if (!scheduled) {
        scheduled = true;
        setImmediate(round);
      }
      return;
  }
};
