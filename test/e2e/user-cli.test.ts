/**
 * `user add ADDRESS --password-stdin`, `user list`, `user del ADDRESS` (CONTRACT "Commands") against the users
 * file of a running server: the file is replaced atomically (temp + rename: a new inode, mode 0600, no temp file
 * left), and SIGHUP makes the server use it (issue 3 §7).
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { BUN, MAIN, REPO, SmtpClient, USERS, useServer, waitFor } from "../helpers/index.ts";

// The AUTH failures this file provokes on purpose must not trip the per-address brute-force delay.
const srv = useServer({ config: "[limits]\nauth_ip_delay_after = 1000\nauth_ip_block_after = 2000\n" });

interface Run {
  code: number;
  out: string;
  err: string;
}

function user(args: string[], stdin = ""): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(BUN, [MAIN, "user", ...args, "--config", srv().configPath], { cwd: REPO, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const t = setTimeout(() => p.kill("SIGKILL"), 30_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out, err });
    });
    p.stdin.end(stdin);
  });
}

const usersPath = (): string => join(srv().dir, "users.txt");
const reloads = (): number => srv().logs().split("config.reloaded").length - 1;

/** SIGHUP, then wait for the server's log line that the reload is done. */
async function hup(): Promise<void> {
  const before = reloads();
  process.kill(srv().pid, "SIGHUP");
  await waitFor(() => reloads() > before, 10_000);
}

async function authPlain(user: string, pass: string): Promise<number> {
  const c = await SmtpClient.connect(srv().ports.submissions, { tls: true });
  try {
    await c.hello();
    return (await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString("base64")}`)).code;
  } finally {
    c.destroy();
  }
}

describe("user add / list / del with a running server", () => {
  test("add: password from stdin, file replaced by rename (new inode, 0600, no temp file); AUTH works after SIGHUP", async () => {
    const ino = statSync(usersPath()).ino;
    const r = await user(["add", "carol@example.test", "--password-stdin"], "carol-pw-1\n");
    expect(r.code, r.err).toBe(0);
    const st = statSync(usersPath());
    expect(st.ino, "replaced by rename, not rewritten in place").not.toBe(ino);
    expect(st.mode & 0o777).toBe(0o600);
    expect(readdirSync(srv().dir).filter((n) => n.startsWith(".users.txt"))).toEqual([]);
    const text = readFileSync(usersPath(), "utf8");
    expect(text).toMatch(/^carol@example\.test:\$argon2id\$/m);
    expect(text).not.toContain("carol-pw-1");
    // The existing users are kept.
    expect(text).toMatch(/^alice@example\.test:/m);
    expect(text).toMatch(/^bob@example\.test:/m);

    await hup();
    expect(await authPlain("carol@example.test", "carol-pw-1")).toBe(235);
    expect(await authPlain("carol@example.test", "wrong")).toBe(535);
    expect(await authPlain("alice@example.test", USERS.alice)).toBe(235);
  });

  test("list shows every user, one per line", async () => {
    const r = await user(["list"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim().split("\n").sort()).toEqual(["alice@example.test", "bob@example.test", "carol@example.test"]);
  });

  test("add again replaces the password (only the first stdin line counts)", async () => {
    const r = await user(["add", "carol@example.test", "--password-stdin"], "carol-pw-2\nignored\n");
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(usersPath(), "utf8").match(/^carol@example\.test:/gm)).toHaveLength(1);
    await hup();
    expect(await authPlain("carol@example.test", "carol-pw-2")).toBe(235);
    expect(await authPlain("carol@example.test", "carol-pw-1")).toBe(535);
  });

  test("del removes the user (new inode, 0600); AUTH fails after SIGHUP, others unaffected", async () => {
    const ino = statSync(usersPath()).ino;
    const r = await user(["del", "carol@example.test"]);
    expect(r.code, r.err).toBe(0);
    const st = statSync(usersPath());
    expect(st.ino).not.toBe(ino);
    expect(st.mode & 0o777).toBe(0o600);
    expect((await user(["list"])).out.trim().split("\n").sort()).toEqual(["alice@example.test", "bob@example.test"]);
    await hup();
    expect(await authPlain("carol@example.test", "carol-pw-2")).toBe(535);
    expect(await authPlain("bob@example.test", USERS.bob)).toBe(235);
  });

  test("del of a user that does not exist fails and leaves the file alone", async () => {
    const before = readFileSync(usersPath(), "utf8");
    const ino = statSync(usersPath()).ino;
    const r = await user(["del", "nobody@example.test"]);
    expect(r.code).not.toBe(0);
    expect(r.err.trim()).not.toBe("");
    expect(readFileSync(usersPath(), "utf8")).toBe(before);
    expect(statSync(usersPath()).ino).toBe(ino);
  });

  test("bad usage exits 2 with a message on stderr, and the file is untouched", async () => {
    const before = readFileSync(usersPath(), "utf8");
    const cases: Array<[string[], string]> = [
      [[], ""],
      [["add"], "pw\n"],
      [["add", "not-an-address", "--password-stdin"], "pw\n"],
      [["add", "dave@example.test", "--password-stdin"], ""], // empty password
      [["add", "dave@example.test", "--password-stdin", "--bogus"], "pw\n"],
      [["frobnicate"], ""],
      [["list", "extra"], ""],
      [["del"], ""],
    ];
    for (const [args, stdin] of cases) {
      const r = await user(args, stdin);
      expect(r.code, `user ${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err.trim(), `user ${args.join(" ")}`).not.toBe("");
    }
    expect(readFileSync(usersPath(), "utf8")).toBe(before);
  });
});
