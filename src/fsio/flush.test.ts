import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { flushSync, loadSyncFs } from "./index.ts";

function withFiles(fn: (dir: string, fds: number[]) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "ringmta-flush-"));
  const fds = [0, 1, 2].map((i) => {
    const fd = openSync(join(dir, `f${i}`), "wx", 0o600);
    writeSync(fd, `file ${i}\n`);
    return fd;
  });
  try {
    fn(dir, fds);
  } finally {
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

function linuxAtLeast58(): boolean {
  if (process.platform !== "linux") return false;
  const [maj, min] = readFileSync("/proc/sys/kernel/osrelease", "utf8").split(".").map(Number) as [number, number];
  return maj > 5 || (maj === 5 && min >= 8);
}

test("syncfs is offered exactly on Bun on Linux 5.8 or later, and flushes a batch", async () => {
  const syncfs = await loadSyncFs();
  expect(syncfs !== null).toBe(linuxAtLeast58() && process.env.RINGMTA_NO_SYNCFS !== "1");
  if (syncfs === null) return;
  withFiles((dir, fds) => {
    expect(syncfs!(fds[0]!)).toBe(true);
    expect(() => flushSync(syncfs, fds, [dir])).not.toThrow();
    expect(readFileSync(join(dir, "f2"), "utf8")).toBe("file 2\n");
  });
});

test("without syncfs every file and directory is fsync'd; a bad descriptor fails the whole batch", () => {
  withFiles((dir, fds) => {
    expect(() => flushSync(null, fds, [dir])).not.toThrow();
    expect(() => flushSync(null, [...fds, 987654], [dir])).toThrow();
  });
});

test("a syncfs that reports failure fails the batch (nothing of it may be acknowledged)", () => {
  withFiles((dir, fds) => {
    expect(() => flushSync(() => false, fds, [dir])).toThrow(/syncfs failed/);
  });
});
