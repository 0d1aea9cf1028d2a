/**
 * Make a batch durable with as few journal commits as the platform allows: one syncfs(2) per filesystem where
 * the runtime offers it (runtime/syncfs.ts: the same guarantee as an fsync of every file on it), else an fsync of
 * each file and directory. Synchronous: for threads whose job is the disk (the spool writer, delivery workers).
 * Any failure fails the whole batch — an I/O error on a commit is rare, and nothing of it may be acknowledged.
 */
import { closeSync, fstatSync, fsyncSync, openSync } from "node:fs";
import type { SyncFs } from "../runtime/index.ts";

export function flushSync(syncfs: SyncFs | null, fds: readonly number[], dirs: readonly string[]): void {
  const opened: number[] = [];
  try {
    const dirFds = dirs.map((d) => {
      const fd = openSync(d, "r");
      opened.push(fd);
      return fd;
    });
    if (syncfs !== null) {
      const byDevice = new Map<number, number>();
      for (const fd of [...fds, ...dirFds]) {
        const dev = fstatSync(fd).dev;
        if (!byDevice.has(dev)) byDevice.set(dev, fd);
      }
      for (const fd of byDevice.values()) if (!syncfs(fd)) throw new Error("syncfs failed: the batch is not durable");
      return;
    }
    for (const fd of fds) fsyncSync(fd);
    for (const fd of dirFds) fsyncSync(fd);
  } finally {
    for (const fd of opened) closeSync(fd);
  }
}
