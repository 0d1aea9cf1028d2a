import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { loadUsers, parseUsers, saveUsers } from "./users-file.ts";

const ARGON = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
const BCRYPT = "$2b$10$abcdefghijklmnopqrstuu5Zb0b1o0k6Gm4zv1Hn5e3c5j1y5mXQe";

const dir = mkdtempSync(join(tmpdir(), "ringmta-users-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("parseUsers", () => {
  test("address:hash lines; the hash keeps its own ':'-free PHC punctuation ($ , =)", () => {
    const { users, errors } = parseUsers(`alice@example.test:${ARGON}\nbob@example.test:${BCRYPT}\n`);
    expect(errors).toEqual([]);
    expect(users.get("alice@example.test")).toEqual({ address: "alice@example.test", hash: ARGON });
    expect(users.get("bob@example.test")!.hash).toBe(BCRYPT);
  });

  test("keys are lower-cased, the address keeps its case; CRLF, blanks, comments and spaces are tolerated", () => {
    const { users, errors } = parseUsers(`# users\r\n\r\n  Alice@Example.TEST : ${ARGON}  \r\n`);
    expect(errors).toEqual([]);
    expect([...users.keys()]).toEqual(["alice@example.test"]);
    expect(users.get("alice@example.test")!.address).toBe("Alice@Example.TEST");
  });

  test("a later line for the same address replaces the earlier one", () => {
    const { users } = parseUsers(`a@x.test:h1\nA@X.test:h2\n`);
    expect(users.size).toBe(1);
    expect(users.get("a@x.test")!.hash).toBe("h2");
  });

  test("bad lines are reported with their line number and skipped; good ones still load", () => {
    const { users, errors } = parseUsers(["no-colon-here", "nodomain:hash", "a@b@c.test:hash", "empty@x.test:", "ok@x.test:h"].join("\n"));
    expect(errors).toEqual([
      'line 1: expected "address:hash"',
      'line 2: expected "address:hash"',
      'line 3: expected "address:hash"',
      'line 4: expected "address:hash"',
    ]);
    expect([...users.keys()]).toEqual(["ok@x.test"]);
  });
});

describe("loadUsers / saveUsers", () => {
  test("a missing file or an empty path is no users, not an error", () => {
    expect(loadUsers(join(dir, "absent.txt")).users.size).toBe(0);
    expect(loadUsers("").users.size).toBe(0);
  });

  test("saveUsers writes mode 0600 by rename (a new inode), round-trips, and leaves no temp file", () => {
    const path = join(dir, "users.txt");
    writeFileSync(path, "old@x.test:h\n", { mode: 0o644 });
    const before = statSync(path).ino;
    saveUsers(path, [
      { address: "Alice@example.test", hash: ARGON },
      { address: "bob@example.test", hash: BCRYPT },
    ]);
    const st = statSync(path);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.ino).not.toBe(before);
    expect(readFileSync(path, "utf8")).toBe(`Alice@example.test:${ARGON}\nbob@example.test:${BCRYPT}\n`);
    const back = loadUsers(path);
    expect(back.errors).toEqual([]);
    expect(back.users.get("alice@example.test")).toEqual({ address: "Alice@example.test", hash: ARGON });
    expect(readdirSync(dir).filter((n) => n.includes(".tmp"))).toEqual([]);
  });
});
