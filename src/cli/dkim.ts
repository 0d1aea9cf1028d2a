/**
 * `dkim keygen --domain D --selector S [--algo rsa|ed25519] [--bits 2048] [--config FILE]` (CONTRACT "Commands"):
 * writes DATA/dkim/<D>/<S>.key (PKCS#8 PEM, 0600, directories 0700; never over an existing key) and prints the
 * record to publish as one zone-file line.
 */
import { isDomainName, isSelector } from "../config/index.ts";
import { dkimRecordLine, generateKeyFile, keyFile, RSA_BITS, type KeyAlgorithm } from "../dkim/index.ts";
import { flag, parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport } from "./load.ts";

const USAGE = "usage: dkim keygen --domain D --selector S [--algo rsa|ed25519] [--bits 2048] [--config FILE].";

export function dkimCommand(argv: string[]): number {
  const a = parseArgs(argv, ["domain", "selector", "algo", "bits", "config"], []);
  if (a.positionals[0] !== "keygen" || a.positionals.length !== 1) throw new UsageError(USAGE);
  const domain = flag(a, "domain")?.toLowerCase().replace(/\.$/, "");
  if (!domain || !isDomainName(domain)) throw new UsageError("--domain D is required (a domain name).");
  const selector = flag(a, "selector");
  if (!selector || !isSelector(selector)) throw new UsageError('--selector S is required (letters, digits, "-", "_").');
  const algo = flag(a, "algo") ?? "rsa";
  if (algo !== "rsa" && algo !== "ed25519") throw new UsageError('--algo must be "rsa" or "ed25519".');
  const bitsText = flag(a, "bits");
  if (bitsText !== undefined && algo !== "rsa") throw new UsageError("--bits applies to RSA keys only.");
  const bits = bitsText === undefined ? 2048 : Number(bitsText);
  if (!Number.isInteger(bits) || bits < RSA_BITS.min || bits > RSA_BITS.max) {
    throw new UsageError(`--bits must be an integer from ${RSA_BITS.min} to ${RSA_BITS.max}.`);
  }
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  const file = keyFile(config.dataDir, domain, selector);
  let key;
  try {
    key = generateKeyFile(file, algo as KeyAlgorithm, bits);
  } catch (e) {
    if ((e as { code?: string }).code === "EEXIST") {
      process.stderr.write(`ringmta: ${file} already exists; a DKIM key is never overwritten (pick a new selector).\n`);
      return 2;
    }
    throw e;
  }
  process.stdout.write(dkimRecordLine(domain, selector, key) + "\n");
  return 0;
}
