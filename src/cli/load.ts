/** Shared by the subcommands: resolve --config the CONTRACT way and print problems as `config error: …`. */
import { resolveConfig, type Config } from "../config/index.ts";
import { loadKeyring, type DkimKeyring } from "../dkim/index.ts";
import { flag, type ParsedArgs } from "./args.ts";

export class ConfigProblem extends Error {}

export function printConfigErrors(errors: string[]): void {
  for (const e of errors) process.stderr.write(`config error: ${e}\n`);
}

/** Returns the config, or prints its problems and returns null (the caller exits 2). */
export function loadConfigOrReport(a: ParsedArgs): Config | null {
  const r = resolveConfig(flag(a, "config"), process.cwd());
  if (r.ok) return r.config;
  printConfigErrors(r.errors);
  return null;
}

/** CONTRACT "DKIM": every key of [dkim.selectors] must read; else its problems are printed (the caller exits 2). */
export function loadKeyringOrReport(c: Config): DkimKeyring | null {
  const k = loadKeyring(c.dataDir, c.dkim.selectors);
  if (k.ok) return k.keyring;
  printConfigErrors(k.errors);
  return null;
}
