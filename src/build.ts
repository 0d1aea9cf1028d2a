/**
 * `bun run build` → dist/ringmta: one self-contained executable (`bun build --compile`, minified, bytecode).
 *
 * Worker files must be extra entrypoints of the compile. They are found here, not listed by hand: every
 * `new URL("./name.ts", import.meta.url)` in src/ names a module loaded at run time, i.e. a worker. With
 * `--entry-naming [name].[ext]` each entry is embedded at the binary's root (/$bunfs/root/name.js) and the main
 * bundle's import.meta.url is /$bunfs/root/ringmta, so that same URL, written in the file beside the worker,
 * resolves both from source and inside the binary (Bun maps the .ts name to the embedded .js). Hence the rules,
 * checked below: the URL is built in the worker's own folder as exactly "./name.ts", and worker basenames are
 * unique. A path with a folder in it ("../app/x.ts") would point outside the binary's root.
 * `--format=esm` because main.ts uses top-level await, which --bytecode otherwise rejects.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = "src/main.ts";
/** Entrypoints beyond main.ts and the discovered workers (none today). */
const EXTRA_ENTRIES: string[] = [];

const MODULE_URL = /new\s+URL\(\s*["']([^"']+\.ts)["']\s*,\s*import\.meta\.url\s*\)/g;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith(".ts") && !/\.(test|fixture)\.ts$/.test(name) && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Repo-relative worker entry files, from every `new URL("./x.ts", import.meta.url)` in src/. */
export function workerEntries(repo = REPO): string[] {
  const found = new Set<string>();
  const problems: string[] = [];
  for (const file of sources(join(repo, "src"))) {
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, "");
    for (const m of text.matchAll(MODULE_URL)) {
      const rel = relative(repo, file);
      const spec = m[1]!;
      if (!/^\.\/[\w.-]+\.ts$/.test(spec)) {
        problems.push(`${rel}: worker URL "${spec}" must be "./name.ts", beside the file that starts the worker`);
        continue;
      }
      const target = join(dirname(file), spec);
      if (!existsSync(target)) problems.push(`${rel}: worker file ${spec} does not exist`);
      else found.add(relative(repo, target));
    }
  }
  const names = new Map<string, string>();
  for (const f of found) {
    const other = names.get(basename(f));
    if (other !== undefined) problems.push(`worker files ${other} and ${f} share a name; the binary keeps one`);
    names.set(basename(f), f);
  }
  if (problems.length) throw new Error(`build: ${problems.join("\n")}`);
  return [...found].sort();
}

export interface BuildResult {
  outfile: string;
  entries: string[];
  bytes: number;
  ms: number;
}

/** Compile to `outfile` with the bun binary that runs this (or node_modules/.bin/bun). Throws with bun's output. */
export function buildBinary(outfile = join(REPO, "dist", "ringmta")): BuildResult {
  const entries = [MAIN, ...workerEntries(), ...EXTRA_ENTRIES];
  const local = join(REPO, "node_modules", ".bin", "bun");
  const bun = basename(process.execPath).startsWith("bun") ? process.execPath : local;
  mkdirSync(dirname(outfile), { recursive: true });
  const t0 = Date.now();
  const args = ["build", "--compile", "--minify", "--bytecode", "--format=esm", "--entry-naming", "[name].[ext]"];
  const r = spawnSync(bun, [...args, ...entries, "--outfile", outfile], { cwd: REPO, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`bun build failed (${r.status ?? r.error?.message}):\n${r.stdout}${r.stderr}`);
  return { outfile, entries, bytes: statSync(outfile).size, ms: Date.now() - t0 };
}

if ((import.meta as { main?: boolean }).main) {
  try {
    const r = buildBinary(process.argv[2] ? resolve(process.argv[2]) : undefined);
    const mib = (r.bytes / 1024 / 1024).toFixed(1);
    process.stdout.write(`built ${relative(process.cwd(), r.outfile)} (${mib} MiB, ${r.ms} ms) from ${r.entries.join(" ")}\n`);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
