/**
 * The CLI (CONTRACT "Commands"): serve, check-config, user, queue, certs, dkim, dns-records, verify. Exit codes: 0 ok, 1 runtime failure,
 * 2 bad usage or bad config. Errors go to stderr, one plain sentence each.
 */
import type { Transport } from "../transport/types.ts";
import { UsageError } from "./args.ts";
import { certsCommand } from "./certs.ts";
import { checkConfigCommand } from "./check-config.ts";
import { dkimCommand } from "./dkim.ts";
import { dnsRecordsCommand } from "./dns-records.ts";
import { directoryCommand } from "./directory.ts";
import { queueCommand } from "./queue.ts";
import { serveCommand } from "./serve.ts";
import { userCommand } from "./user.ts";
import { verifyCommand } from "./verify.ts";

export interface CliRuntime {
  transport: () => Transport;
}

const USAGE = `usage: ringmta <command> [options]
  serve [--config FILE] [--log-format json|text]
  check-config [--config FILE]
  user add ADDRESS [--password-stdin] [--config FILE]
  user del ADDRESS [--config FILE]
  user list [--config FILE]
  queue list [--json] [--config FILE]
  queue show ID [--config FILE]
  queue delete ID [--config FILE]
  queue flush [--config FILE]
  certs generate --host NAME [--out DIR] [--rsa]
  dkim keygen --domain D --selector S [--algo rsa|ed25519] [--bits 2048] [--config FILE]
  dns-records [--domain D] [--config FILE]
  verify --ip IP --helo NAME --mail-from ADDR [--config FILE] [MESSAGE_FILE]
  directory migrate [--config FILE]
`;

export async function run(argv: string[], rt: CliRuntime): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "serve":
        return await serveCommand(rest, rt.transport);
      case "check-config":
        return checkConfigCommand(rest);
      case "user":
        return await userCommand(rest);
      case "queue":
        return queueCommand(rest);
      case "certs":
        return await certsCommand(rest);
      case "dkim":
        return dkimCommand(rest);
      case "dns-records":
        return dnsRecordsCommand(rest);
      case "verify":
        return await verifyCommand(rest);
      case "directory":
        return await directoryCommand(rest);
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return 0;
      default:
        process.stderr.write(cmd === undefined ? USAGE : `ringmta: unknown command "${cmd}".\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ringmta: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`ringmta: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
