/**
 * `directory migrate [--config FILE]`: create or upgrade the PostgreSQL tables of [directory] (and the triggers
 * that tell every node about a change). Idempotent: a second run changes nothing.
 */
import { connect, migrate, SCHEMA_VERSION } from "../directory/index.ts";
import { parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport } from "./load.ts";

export async function directoryCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ["config"], []);
  const [sub, ...extra] = a.positionals;
  if (sub !== "migrate" || extra.length > 0) throw new UsageError("usage: directory migrate [--config FILE].");
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  if (config.directory.kind !== "postgres") {
    throw new UsageError('[directory] kind is not "postgres" in the config: there are no tables to migrate.');
  }
  const sql = connect(config.directory.url, { max: 1 });
  try {
    const r = await migrate(sql);
    process.stdout.write(
      r.from === SCHEMA_VERSION
        ? `directory schema is up to date (version ${SCHEMA_VERSION})\n`
        : `directory schema migrated from version ${r.from} to ${r.to}\n`,
    );
    return 0;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
