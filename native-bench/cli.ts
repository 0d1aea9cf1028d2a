/** Subcommand dispatch: the load run (default), `compare`, `idle`, `flood`, `defence`, `dkim`, `checks`. Returns the exit code. */
import { LOAD_USAGE, parseLoadArgs, UsageError } from "./args.ts";
import { runCompare } from "./compare.ts";
import { runFlood } from "./flood.ts";
import { runChecksBench } from "./checks.ts";
import { runDefence } from "./defence.ts";
import { runDkimBench } from "./dkim.ts";
import { runIdle } from "./idle.ts";
import { runLoad } from "./load.ts";
import { formatSummary } from "./report.ts";

export async function run(argv: string[]): Promise<number> {
  try {
    const [sub, ...rest] = argv;
    if (sub === "compare") return await runCompare(rest);
    if (sub === "idle") return await runIdle(rest);
    if (sub === "flood") return await runFlood(rest);
    if (sub === "defence") return await runDefence(rest);
    if (sub === "dkim") return await runDkimBench(rest);
    if (sub === "checks") return await runChecksBench(rest);
    if (sub === "help" || sub === "--help" || sub === "-h") {
      console.log(LOAD_USAGE);
      return 0;
    }
    const o = parseLoadArgs(argv);
    const r = await runLoad(o);
    console.log(o.json ? JSON.stringify(r) : formatSummary(r));
    return r.ok ? 0 : 1;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`bench: ${err.message}\n${LOAD_USAGE}`);
      return 2;
    }
    console.error(`bench: ${(err as Error).message}`);
    return 1;
  }
}
