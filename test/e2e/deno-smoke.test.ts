/**
 * Runs the Deno smoke suite (test/deno/) under Deno's own test runner, so that `npm test` covers Deno too.
 * Deno comes from the `deno` npm package (node_modules/.bin/deno).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect, test } from "vitest";
import { REPO } from "../helpers/index.ts";

test("deno test -A test/deno/ passes", () => {
  const r = spawnSync(join(REPO, "node_modules", ".bin", "deno"), ["test", "-A", "test/deno/"], {
    cwd: REPO,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 240_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.error, out).toBeUndefined();
  expect(r.status, out).toBe(0);
  expect(out).toMatch(/ok \| \d+ passed \(\d+ steps\) \| 0 failed/);
}, 250_000);
