/**
 * Group commit. Every fsync request made while a round is running waits for the next round, which serves all of
 * them together: file fsyncs run concurrently through the async `fs.fsync` (the runtime's threadpool, never the
 * event loop), and each distinct directory is fsync'd once per round however many requests named it. Many
 * sessions committing at once therefore share one flush instead of queueing one fsync each.
 */
import { close, fsync, open } from "node:fs";
import type { SyncFs } from "../runtime/index.ts";
import { flushSync } from "./flush.ts";
import { setImmediate } from "node:timers";

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function fsyncDirAsync(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(dir, "r", (err, fd) => {
      if (err) return reject(err);
      fsync(fd, (syncErr) => {
        close(fd, () => (syncErr ? reject(syncErr) : resolve()));
      });
    });
  });
}

export class SyncBatcher {
  private fds: Array<{ fd: number; w: Waiter }> = [];
  private dirs = new Map<string, Waiter[]>();
  private running = false;
  /** Rounds flushed so far (observable for tests and metrics). */
  rounds = 0;

  /** Resolves once `fd`'s data and metadata are on stable storage. The caller keeps `fd` open until then. */
  syncFd(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.fds.push({ fd, w: { resolve, reject } });
      this.kick();
    });
  }

  /** Resolves once the entries of directory `path` (creations, renames, unlinks made before the call) are durable. */
  syncDir(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const list = this.dirs.get(path);
      if (list) list.push({ resolve, reject });
      else this.dirs.set(path, [{ resolve, reject }]);
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // Defer the first round by one macrotask so that requests made in the same tick share it.
    setImmediate(() => void this.loop());
  }

  /**
   * With syncfs (runtime/syncfs.ts), a round is one syncfs per filesystem on this thread, which blocks it for the
   * one journal commit the round costs anyway; without, the fsyncs run concurrently on the threadpool.
   */
  syncfs: SyncFs | null = null;

  private async loop(): Promise<void> {
    while (this.fds.length > 0 || this.dirs.size > 0) {
      const fds = this.fds;
      const dirs = this.dirs;
      this.fds = [];
      this.dirs = new Map();
      this.rounds++;
      if (this.syncfs !== null) {
        const waiters = [...fds.map((f) => f.w), ...[...dirs.values()].flat()];
        try {
          flushSync(this.syncfs, fds.map((f) => f.fd), [...dirs.keys()]);
          for (const w of waiters) w.resolve();
        } catch (err) {
          for (const w of waiters) w.reject(err);
        }
        // Let requests made meanwhile (by continuations of this round) join the next one.
        await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      const work: Promise<void>[] = [];
      for (const { fd, w } of fds) work.push(fsyncAsync(fd).then(w.resolve, w.reject));
      for (const [dir, ws] of dirs) {
        work.push(
          fsyncDirAsync(dir).then(
            () => ws.forEach((w) => w.resolve()),
            (err) => ws.forEach((w) => w.reject(err)),
          ),
        );
      }
      await Promise.all(work);
    }
    this.running = false;
  }
}
