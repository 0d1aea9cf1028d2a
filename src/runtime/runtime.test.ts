/**
 * The runtime port's password hashing: the wasm hasher (what Deno uses) verifies what Bun.password writes, and
 * Bun.password (what passwordHasher() gives on Bun, where vitest runs) verifies what the wasm hasher writes.
 */
import { afterAll, describe, expect, test } from "vitest";
import { passwordHasher, runtimeLimitations, runtimeName, WasmPasswordHasher } from "./index.ts";

/** Made by Bun.password.hash on Bun 1.4: argon2id defaults, and bcrypt (cost 10). */
const ARGON2 = "$argon2id$v=19$m=65536,t=2,p=1$4bykF2QXKyVxE7WmhLqz6/wWAwpgNR6n3EB1UY/rqRg$KwxcHAKtyFi+0yUpLZGHY702neGd87/uN4WCAs09Ivw";
const BCRYPT = "$2b$10$VWJ7O4m9EDABaDYtcBzhWOoh.YjXkCwb34iaK1lN.ofBklkX0nO3W";

const wasm = new WasmPasswordHasher();
afterAll(() => wasm.close());

describe("WasmPasswordHasher", () => {
  test("verifies Bun's argon2id hash: right password true, wrong false", async () => {
    expect(await wasm.verify("secret-bob", ARGON2)).toBe(true);
    expect(await wasm.verify("secret-bo", ARGON2)).toBe(false);
  });

  test("verifies Bun's bcrypt hash", async () => {
    expect(await wasm.verify("secret-carol", BCRYPT)).toBe(true);
    expect(await wasm.verify("secret-caro", BCRYPT)).toBe(false);
  });

  test("bcrypt over 72 bytes: SHA-512 first, as Bun.password does", async () => {
    const long = "p".repeat(100);
    const bcryptLong = await bunBcrypt(long);
    expect(await wasm.verify(long, bcryptLong)).toBe(true);
    expect(await wasm.verify(long.slice(0, 72), bcryptLong)).toBe(false);
  });

  test("a malformed or unknown hash verifies nothing and does not throw", async () => {
    expect(await wasm.verify("x", "")).toBe(false);
    expect(await wasm.verify("x", "$argon2id$v=19$garbage")).toBe(false);
    expect(await wasm.verify("x", "plaintext")).toBe(false);
  });

  test("hash writes Bun's argon2id format (64 MiB, t=2, p=1), which it and Bun.password verify", async () => {
    const h = await wasm.hash("new-password");
    expect(h).toMatch(/^\$argon2id\$v=19\$m=65536,t=2,p=1\$[A-Za-z0-9+/]{43}\$[A-Za-z0-9+/]{43}$/);
    expect(await wasm.verify("new-password", h)).toBe(true);
    expect(await passwordHasher().verify("new-password", h)).toBe(true);
    expect(await passwordHasher().verify("other", h)).toBe(false);
  });

  test("concurrent verifies spread over the worker threads and all answer", async () => {
    const results = await Promise.all([0, 1, 2, 3].map((i) => wasm.verify(i % 2 ? "secret-bob" : "nope", ARGON2)));
    expect(results).toEqual([false, true, false, true]);
  });
});

describe("runtime", () => {
  test("on Bun: the name is bun and nothing is limited", () => {
    expect(runtimeName()).toBe("bun");
    expect(runtimeLimitations()).toEqual([]);
  });
});

/** A bcrypt hash from Bun.password, reached through a child Bun process (no Bun global in this file). */
async function bunBcrypt(password: string): Promise<string> {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(
    process.execPath,
    ["-e", "process.stdout.write(await Bun.password.hash(process.argv[1], { algorithm: 'bcrypt', cost: 4 }))", password],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}
