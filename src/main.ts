/**
 * Entry point: pick the runtime's transport adapter and hand argv to the CLI. Nothing imports this file.
 * The adapter is imported for the runtime in use only: transport/bun loads bun:ffi, which Deno cannot load.
 */
import { run } from "./cli/index.ts";
import { runtimeName } from "./runtime/index.ts";
import type { Transport } from "./transport/types.ts";

const transport: () => Transport =
  runtimeName() === "bun"
    ? (await import("./transport/bun/index.ts")).createBunTransport
    : (await import("./transport/deno/index.ts")).createDenoTransport;
const code = await run(process.argv.slice(2), { transport });
process.exit(code);
