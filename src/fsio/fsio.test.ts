import { describe, expect, test } from "vitest";
import { openSync, closeSync, readdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { mkdirDurableSync, SyncBatcher, writeFileDurable, writevAllSync } from "./index.ts";
import { tempDir } from "../../test/helpers/server.ts";

const temp = () => tempDir("ringmta-fsio-");

describe("writeFileDurable", () => {
  test("replaces the file atomically, mode 0600, no temp file left", () => {
    const dir = temp();
    const path = join(dir, "users.txt");
    writeFileDurable(path, "one\n");
    writeFileDurable(path, new TextEncoder().encode("two\n"));
    expect(readFileSync(path, "utf8")).toBe("two\n");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["users.txt"]);
  });
});

describe("writevAllSync", () => {
  test("writes 3,000 pieces (more than IOV_MAX) in order, at a position or at the file's offset", () => {
    const dir = temp();
    const pieces = Array.from({ length: 3000 }, (_, i) => new TextEncoder().encode(i % 7 === 0 ? "" : `${i},`));
    const want = Buffer.concat(pieces.map((p) => Buffer.from(p)));
    const fd = openSync(join(dir, "v"), "w+");
    try {
      writeSync(fd, "HEAD");
      expect(writevAllSync(fd, pieces)).toBe(want.length);
      expect(writevAllSync(fd, [new Uint8Array([0x21])], 2)).toBe(1);
    } finally {
      closeSync(fd);
    }
    const got = readFileSync(join(dir, "v"));
    expect(got.subarray(0, 4).toString()).toBe("HE!D");
    expect(got.subarray(4).equals(want)).toBe(true);
  });
});

describe("mkdirDurableSync", () => {
  test("creates missing levels 0700 and reports whether it created anything", () => {
    const dir = temp();
    const deep = join(dir, "a", "b", "c");
    expect(mkdirDurableSync(deep)).toBe(true);
    expect(statSync(join(dir, "a")).mode & 0o777).toBe(0o700);
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(mkdirDurableSync(deep)).toBe(false);
  });
});

describe("SyncBatcher", () => {
  test("requests made together share one round; each directory is synced once per round", async () => {
    const dir = temp();
    const b = new SyncBatcher();
    const fds = Array.from({ length: 20 }, (_, i) => {
      const fd = openSync(join(dir, `f${i}`), "w", 0o600);
      writeSync(fd, "x");
      return fd;
    });
    await Promise.all([...fds.map((fd) => b.syncFd(fd)), b.syncDir(dir), b.syncDir(dir)]);
    expect(b.rounds).toBe(1);
    for (const fd of fds) closeSync(fd);
  });

  test("requests made while a round runs go to the next round", async () => {
    const dir = temp();
    const b = new SyncBatcher();
    const first = b.syncDir(dir);
    await new Promise((r) => setImmediate(r)); // the first round has started
    const later = [b.syncDir(dir), b.syncDir(dir)];
    await Promise.all([first, ...later]);
    expect(b.rounds).toBe(2);
  });

  test("a failing request rejects alone", async () => {
    const dir = temp();
    const b = new SyncBatcher();
    const bad = b.syncDir(join(dir, "missing"));
    const good = b.syncDir(dir);
    await expect(bad).rejects.toThrow();
    await expect(good).resolves.toBeUndefined();
  });
});
