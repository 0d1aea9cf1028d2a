/**
 * Counts delivered files for the end-to-end wait. The glob names Maildir directories (their new/ and cur/ entries
 * are counted; tmp/ holds unfinished deliveries, Maildir spec) or files directly. Dot files are not messages.
 */
import { readdirSync, statSync } from "node:fs";
import { isAbsolute, join, resolve, sep } from "node:path";

const GLOB_CHARS = /[*?[\]{}]/;

/** Splits an absolute pattern into the literal directory to scan from and the glob below it. */
function splitGlob(pattern: string): { cwd: string; rest: string | null } {
  const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
  const parts = abs.split(sep);
  const i = parts.findIndex((p) => GLOB_CHARS.test(p));
  if (i === -1) return { cwd: abs, rest: null };
  return { cwd: parts.slice(0, i).join(sep) || sep, rest: parts.slice(i).join("/") };
}

function entries(dir: string): number {
  try {
    let n = 0;
    for (const name of readdirSync(dir)) if (name.charCodeAt(0) !== 46) n++;
    return n;
  } catch {
    return 0;
  }
}

function countPath(p: string): number {
  let st;
  try {
    st = statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return 1;
  return entries(join(p, "new")) + entries(join(p, "cur"));
}

export function countMaildir(pattern: string): number {
  const { cwd, rest } = splitGlob(pattern);
  if (rest === null) return countPath(cwd);
  let n = 0;
  const glob = new Bun.Glob(rest);
  try {
    for (const rel of glob.scanSync({ cwd, onlyFiles: false, dot: false })) n += countPath(join(cwd, rel));
  } catch {
    // The base directory does not exist yet: nothing delivered.
  }
  return n;
}
