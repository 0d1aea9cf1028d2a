/**
 * The users file (CONTRACT): one `address:hash` per line; blank lines and lines starting with # are ignored.
 * The hash is a PHC string as the runtime's password hasher writes it (argon2id or bcrypt): it holds '$', ',' and '=' but an
 * address holds no ':', so the address is everything before the first ':'.
 */
import { readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from "node:fs";
import { dirname, basename, join } from "node:path";

export interface UserEntry {
  address: string;
  hash: string;
}

export interface UsersParse {
  users: Map<string, UserEntry>; // key: lower-cased address
  errors: string[]; // "line N: ..."
}

export function parseUsers(text: string): UsersParse {
  const users = new Map<string, UserEntry>();
  const errors: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const address = colon < 0 ? "" : line.slice(0, colon).trim();
    const hash = colon < 0 ? "" : line.slice(colon + 1).trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(address) || hash === "") {
      errors.push(`line ${i + 1}: expected "address:hash"`);
      continue;
    }
    users.set(address.toLowerCase(), { address, hash });
  }
  return { users, errors };
}

/** Read the users file; a missing file is an empty list (no users yet). */
export function loadUsers(path: string): UsersParse {
  if (path === "") return { users: new Map(), errors: [] };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { users: new Map(), errors: [] };
    throw e;
  }
  return parseUsers(text);
}

/** Rewrite the users file atomically (temp → fsync → rename → fsync dir), mode 0600: it holds hashes. */
export function saveUsers(path: string, users: Iterable<UserEntry>): void {
  const body = [...users].map((u) => `${u.address}:${u.hash}\n`).join("");
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, body, { mode: 0o600 });
  const fd = openSync(tmp, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
