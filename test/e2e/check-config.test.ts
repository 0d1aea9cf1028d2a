/**
 * CONTRACT `check-config`: exit 0 for a valid file; else exit 2 with one `config error: <dotted.path>: <message>`
 * line per problem on stderr.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { BUN, MAIN, REPO, removeDir, tempDir, usersFile } from "../helpers/index.ts";

const dir = tempDir("ringmta-check-");
afterAll(() => removeDir(dir));

const GOOD = `hostname = "mx.test.ringmta"
data_dir = "data"

[tls]
cert = "server.crt"
key = "server.key"

[[listeners]]
name = "mx"
host = "127.0.0.1"
port = 2525
tls = "starttls"
auth = "optional"

[local]
domains = ["example.test"]
users_file = "users.txt"

[local.aliases]
"postmaster@example.test" = ["alice@example.test"]

[limits]
max_recipients = 5
`;

function check(name: string, body: string): { status: number | null; stderr: string } {
  const file = join(dir, name);
  writeFileSync(file, body);
  const r = spawnSync(BUN, [MAIN, "check-config", "--config", file], { cwd: REPO, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

test("a valid file: exit 0", () => {
  writeFileSync(join(dir, "users.txt"), usersFile());
  const r = check("good.toml", GOOD);
  expect(r.status, r.stderr).toBe(0);
});

test("limits.max_recipients = -1: exit 2 and `config error: limits.max_recipients: ...`", () => {
  const r = check("bad.toml", GOOD.replace("max_recipients = 5", "max_recipients = -1"));
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^config error: limits\.max_recipients: \S.*$/m);
});

test("two problems (a bad value and an unknown key): one line each, exit 2", () => {
  const r = check(
    "bad2.toml",
    GOOD.replace("max_recipients = 5", "max_recipients = 0\nno_such_limit = 1").replace('tls = "starttls"', 'tls = "sometimes"'),
  );
  expect(r.status).toBe(2);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("config error: "));
  expect(lines.some((l) => /^config error: limits\.max_recipients: \S/.test(l)), r.stderr).toBe(true);
  expect(lines.some((l) => /^config error: listeners(\.0|\[0\])\.tls: \S/.test(l)), r.stderr).toBe(true);
  expect(lines.some((l) => l.startsWith("config error: limits") && l.includes("no_such_limit")), r.stderr).toBe(true);
  expect(lines.length).toBeGreaterThanOrEqual(3);
});

test("TOML syntax error: exit 2 with a message on stderr", () => {
  const r = check("broken.toml", 'hostname = "unterminated\n');
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).not.toBe("");
});
