import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { defaultConfig } from "./defaults.ts";
import type { ConfigResult } from "./types.ts";
import { validateConfig } from "./validate.ts";

/** CONTRACT "Commands": the file read when no --config is given, if the working directory holds it. */
export const DEFAULT_CONFIG_FILE = "ringmta.toml";

function readError(err: unknown): string {
  switch ((err as { code?: string }).code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a file";
    default:
      return `cannot be read (${(err as Error).message})`;
  }
}

function tomlError(err: unknown): string {
  if (!(err instanceof TomlError)) return `not valid TOML (${(err as Error).message})`;
  // smol-toml's message is "Invalid TOML document: <reason>" followed by a code excerpt; keep the reason only.
  const reason = err.message.split("\n")[0].replace(/^Invalid TOML document:\s*/, "");
  return `TOML syntax error at line ${err.line}, column ${err.column}: ${reason}`;
}

/** Read + parse + validate a file. A missing file or a TOML syntax error is an error line too ("<file>: ..."). */
export function loadConfigFile(path: string): ConfigResult {
  const abs = resolve(path);
  let text: string;
  try {
    text = readFileSync(abs, "utf8");
  } catch (err) {
    return { ok: false, errors: [`${path}: ${readError(err)}`] };
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    return { ok: false, errors: [`${path}: ${tomlError(err)}`] };
  }
  return validateConfig(raw, dirname(abs), abs);
}

/** CONTRACT "Commands": an explicit --config FILE, else ./ringmta.toml if present in cwd, else the defaults. */
export function resolveConfig(explicitPath: string | undefined, cwd: string): ConfigResult {
  if (explicitPath !== undefined) return loadConfigFile(resolve(cwd, explicitPath));
  const implicit = resolve(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(implicit)) return loadConfigFile(implicit);
  return { ok: true, config: defaultConfig(cwd) };
}
