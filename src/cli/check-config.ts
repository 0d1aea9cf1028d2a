import { parseArgs } from "./args.ts";
import { loadConfigOrReport, loadKeyringOrReport } from "./load.ts";

export function checkConfigCommand(argv: string[]): number {
  const a = parseArgs(argv, ["config"], []);
  const c = loadConfigOrReport(a);
  if (!c || !loadKeyringOrReport(c)) return 2;
  process.stdout.write(`config ok: ${c.configPath ?? "embedded defaults"}\n`);
  return 0;
}
