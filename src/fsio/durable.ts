/**
 * Durable file primitives (after chasquid's safeio): a file is first written under a unique temporary name in the
 * destination directory, fsync'd, renamed over its final name, and then the directory is fsync'd so that the
 * rename itself survives a crash (POSIX: rename is atomic, but only the directory fsync makes it durable).
 * Files are created 0600 and directories 0700 (CONTRACT "Storage layout").
 */
import {
  close as fsClose,
  closeSync,
  fsyncSync,
  mkdirSync,
  open as fsOpen,
  openSync,
  rename as fsRename,
  renameSync,
  unlinkSync,
  write as fsWrite,
  writeSync,
  writevSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** A name that no other writer in any process picks: pid-free (spool names must not be tied to a pid). */
export function uniqueTempName(finalName: string): string {
  return `.${finalName}.${Date.now().toString(36)}${randomBytes(6).toString("hex")}.tmp`;
}

/** Write every byte of `data` at the file's current position (writeSync may take fewer bytes than asked). */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/**
 * writev(2) every piece, at `position` or (null) at the file's current position: one call for many pieces, no copy
 * into one buffer. IOV_MAX is 1024 on Linux; a short write continues where it stopped. Returns the bytes written.
 */
export function writevAllSync(fd: number, pieces: readonly Uint8Array[], position: number | null = null): number {
  let written = 0;
  let i = 0;
  let skip = 0; // bytes of pieces[i] already written
  while (i < pieces.length) {
    const batch: Uint8Array[] = [];
    for (let k = i; k < pieces.length && batch.length < 1024; k++) batch.push(k === i ? pieces[k]!.subarray(skip) : pieces[k]!);
    let n = position === null ? writevSync(fd, batch) : writevSync(fd, batch, position + written);
    written += n;
    while (i < pieces.length && n >= pieces[i]!.length - skip) {
      n -= pieces[i]!.length - skip;
      i++;
      skip = 0;
    }
    skip += n;
  }
  return written;
}

/** fsync a directory so that entries created, renamed or removed in it are durable. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Atomically replace `path` with `data`: write temp → fsync → rename → fsync dir. */
export function writeFileDurable(path: string, data: Uint8Array | string, mode: number = FILE_MODE): void {
  const dir = dirname(path);
  const tmp = join(dir, uniqueTempName(basename(path)));
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const fd = openSync(tmp, "wx", mode);
  try {
    writeAllSync(fd, bytes);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuiet(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkQuiet(tmp);
    throw err;
  }
  fsyncDirSync(dir);
}

/** rename + fsync of the directory (or both directories when they differ). */
export function renameDurableSync(from: string, to: string): void {
  renameSync(from, to);
  const a = dirname(from);
  const b = dirname(to);
  fsyncDirSync(b);
  if (a !== b) fsyncDirSync(a);
}

/**
 * Create `dir` and any missing parents (0700) and fsync each parent whose entries changed, so that a file later
 * made durable inside it does not vanish with its directory after a crash. Returns true when something was created.
 */
export function mkdirDurableSync(dir: string): boolean {
  const first = mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return false;
  // `first` is the topmost directory created; fsync its parent and every created level below it.
  let d = dir;
  const levels: string[] = [];
  while (d.length >= first.length) {
    levels.push(dirname(d));
    if (d === first) break;
    d = dirname(d);
  }
  for (const p of levels) fsyncDirSync(p);
  return true;
}

/** unlink, ignoring a missing file (cleanup paths must not mask the original error). */
export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone or never created: nothing to clean up
  }
}

// ---- the same steps on the runtime's threadpool, so the event loop never waits on the disk ------------------

export function openAsync(path: string, flags: string, mode: number): Promise<number> {
  return new Promise((resolve, reject) => fsOpen(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function writeAllAsync(fd: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number): void => {
      fsWrite(fd, data, off, data.length - off, null, (err, n) => {
        if (err) return reject(err);
        if (off + n >= data.length) return resolve();
        step(off + n);
      });
    };
    step(0);
  });
}

export function renameAsync(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => fsRename(from, to, (err) => (err ? reject(err) : resolve())));
}

/** Close without waiting; a close error on a descriptor already fsync'd loses nothing. */
export function closeQuiet(fd: number): void {
  fsClose(fd, () => {});
}
