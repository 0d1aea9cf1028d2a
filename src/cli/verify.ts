/**
 * `verify --ip IP --helo NAME --mail-from ADDR [--config FILE] [MESSAGE_FILE]` (CONTRACT "Commands"): the inbound
 * checks of [checks] on a stored message, as if it came from IP, for operators debugging deliverability. Prints the
 * Authentication-Results field that delivery would add on stdout, and what the checks would do with the message on
 * stderr; exits 0 whatever the result (2 for bad usage or config). DNS goes through [dns] servers.
 *
 * It runs the same code as the MX stage (inbound/auth-checks.ts: SPF, then the message verifier, then
 * concludeChecks), so the field is the one delivery writes. Forged fields with our authserv-id are removed first, as
 * the session does.
 */
import { readFileSync } from "node:fs";
import { checkSpf } from "../checks/index.ts";
import { isIP } from "node:net";
import { Resolver } from "../dns/index.ts";
import { concludeChecks, verifierFor } from "../inbound/index.ts";
import { OwnAuthResultsFilter } from "../protocol/index.ts";
import { flag, parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport } from "./load.ts";

const USAGE = "usage: verify --ip IP --helo NAME --mail-from ADDR [--config FILE] [MESSAGE_FILE].";

/** The message as delivery sees it: CRLF line ends (a file saved on Unix has bare LFs). */
function crlf(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString("latin1");
  return Buffer.from(text.replace(/\r?\n/g, "\r\n"), "latin1");
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ["ip", "helo", "mail-from", "config"], []);
  const ip = flag(a, "ip");
  const helo = flag(a, "helo");
  const sender = flag(a, "mail-from");
  if (ip === undefined || helo === undefined || sender === undefined || a.positionals.length > 1) throw new UsageError(USAGE);
  if (isIP(ip) === 0) throw new UsageError(`--ip ${ip} is not an IP address.`);
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  const file = a.positionals[0];
  let raw: Uint8Array;
  try {
    raw = file === undefined ? readFileSync(0) : readFileSync(file);
  } catch (err) {
    process.stderr.write(`Cannot read ${file ?? "standard input"}: ${(err as Error).message}.\n`);
    return 1;
  }
  const sw = config.checks;
  const dns = new Resolver({ servers: config.dns.servers });
  const envelopeSender = sender.replace(/^<|>$/g, "");
  const spf = sw.spf ? await checkSpf({ ip, helo, sender: envelopeSender }, dns, { receiver: config.hostname }) : null;
  const verifier = verifierFor(sw, dns, null);
  if (verifier !== null) {
    const filter = new OwnAuthResultsFilter(config.hostname);
    const keep = (b: Uint8Array): void => verifier.write(b);
    filter.feed(crlf(raw), keep);
    filter.finish(keep);
  }
  const verified = verifier === null ? null : await verifier.end();
  const report = await concludeChecks({ sw, authservId: config.hostname, dns, spf, verified });
  process.stdout.write(report.field.replace(/\r\n/g, "\n"));
  const act = report.action;
  const what =
    act.kind === "accept" ? "deliver" : act.kind === "quarantine" ? "deliver to the .Junk folder (DMARC quarantine)" : `refuse: ${act.reply}`;
  process.stderr.write(`verify: delivery would ${what}${sw.dmarc === "enforce" ? "" : ` (dmarc = "${sw.dmarc}": policies are not enforced)`}.\n`);
  return 0;
}
