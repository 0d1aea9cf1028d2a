/**
 * Runs the Deno smoke suite (test/deno/) under Deno's own test runner, so that `npm test` covers Deno too, and
 * type-checks the whole server with Deno's checker. Deno comes from the `deno` npm package (node_modules/.bin/deno).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect, test } from "vitest";
import { REPO } from "../helpers/index.ts";

/** `deno <args>` in the repository; its output, after asserting that it ran and exited 0. */
function deno(args: string[]): string {
  const r = spawnSync(join(REPO, "node_modules", ".bin", "deno"), args, {
    cwd: REPO,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 240_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.error, out).toBeUndefined();
  expect(r.status, out).toBe(0);
  return out;
}

test("deno test -A test/deno/ passes", () => {
  expect(deno(["test", "-A", "test/deno/"])).toMatch(/ok \| \d+ passed \(\d+ steps\) \| 0 failed/);
}, 250_000);

test("deno check src/main.ts: the whole server type-checks under Deno", () => {
  deno(["check", "src/main.ts"]);
}, 250_000);
