/** Entry point of `bun run bench -- …`. Nothing imports this file. */
import { run } from "./cli.ts";

process.exit(await run(process.argv.slice(2)));
