/**
 * Entry point: pick the runtime's transport adapter and hand argv to the CLI. Nothing imports this file.
 */
import { run } from "./cli/index.ts";
import { createBunTransport } from "./transport/bun/index.ts";

const code = await run(process.argv.slice(2), { transport: createBunTransport });
process.exit(code);
