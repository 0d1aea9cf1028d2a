import { join, resolve } from "node:path";
import { generateCertificate, writePemPair } from "../certs/index.ts";
import { flag, parseArgs, UsageError } from "./args.ts";

/** `certs generate --host NAME [--out DIR] [--rsa]` → DIR/server.crt and DIR/server.key (0600). */
export async function certsCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ["host", "out"], ["rsa", "no-local"]);
  if (a.positionals[0] !== "generate" || a.positionals.length !== 1) throw new UsageError("usage: certs generate --host NAME [--out DIR] [--rsa].");
  const host = flag(a, "host");
  if (!host || !/^[A-Za-z0-9.-]+$/.test(host)) throw new UsageError("--host NAME is required (a DNS name).");
  const out = resolve(flag(a, "out") ?? "certs");
  const pair = await generateCertificate({ host, rsa: a.flags.has("rsa"), local: !a.flags.has("no-local") });
  const cert = join(out, "server.crt");
  const key = join(out, "server.key");
  writePemPair(pair, cert, key);
  process.stdout.write(`wrote ${cert} and ${key}\n`);
  return 0;
}
