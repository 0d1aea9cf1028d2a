/**
 * `dns-records [--domain D] [--config FILE]` (CONTRACT "Commands"): every record an operator publishes for each
 * local domain, one zone-file line each, owner names absolute, no TTL (the zone's default applies).
 *
 * - MX → hostname; SPF `v=spf1 mx -all` (the MX hosts send our mail; nothing else may: RFC 7208);
 * - one DKIM TXT per selector of the domain, or of its nearest parent with selectors (the domain it signs for);
 * - `_dmarc`: p=quarantine with aggregate reports to postmaster (RFC 7489);
 * - `_mta-sts` (RFC 8461; id changes with the policy, i.e. with the MX host) and `_smtp._tls` (RFC 8460) TXT;
 * - RFC 6186/8314 SRV: `_submission._tcp` for each STARTTLS/plain listener that requires AUTH,
 *   `_submissions._tcp` for each implicit-TLS listener that offers AUTH.
 */
import { createHash } from "node:crypto";
import { isDomainName, type Config } from "../config/index.ts";
import { dkimRecordLine, type DkimKeyring } from "../dkim/index.ts";
import { flag, parseArgs, UsageError } from "./args.ts";
import { loadConfigOrReport, loadKeyringOrReport } from "./load.ts";

export function dnsRecords(config: Config, keyring: DkimKeyring, domains: ReadonlyArray<string>): string[] {
  const host = `${config.hostname.replace(/\.$/, "")}.`;
  const stsId = createHash("sha256").update(`mx:${host}`).digest("hex").slice(0, 20);
  const lines: string[] = [];
  const seen = new Set<string>();
  const add = (line: string): void => {
    if (seen.has(line)) return;
    seen.add(line);
    lines.push(line);
  };
  for (const d of domains) {
    add(`${d}. IN MX 10 ${host}`);
    add(`${d}. IN TXT "v=spf1 mx -all"`);
    for (const k of keyring.forDomain(d)) add(dkimRecordLine(k.domain, k.selector, k.key));
    add(`_dmarc.${d}. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@${d}"`);
    add(`_mta-sts.${d}. IN TXT "v=STSv1; id=${stsId}"`);
    add(`_smtp._tls.${d}. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@${d}"`);
    for (const l of config.listeners) {
      if (l.tls === "implicit" && l.auth !== "off") add(`_submissions._tcp.${d}. IN SRV 0 1 ${l.port} ${host}`);
      else if (l.tls !== "implicit" && l.auth === "required") add(`_submission._tcp.${d}. IN SRV 0 1 ${l.port} ${host}`);
    }
  }
  return lines;
}

export function dnsRecordsCommand(argv: string[]): number {
  const a = parseArgs(argv, ["domain", "config"], []);
  if (a.positionals.length !== 0) throw new UsageError("usage: dns-records [--domain D] [--config FILE].");
  const one = flag(a, "domain")?.toLowerCase().replace(/\.$/, "");
  if (one !== undefined && !isDomainName(one)) throw new UsageError("--domain D must be a domain name.");
  const config = loadConfigOrReport(a);
  if (!config) return 2;
  const keyring = loadKeyringOrReport(config);
  if (!keyring) return 2;
  const domains = one !== undefined ? [one] : config.local.domains;
  for (const line of dnsRecords(config, keyring, domains)) process.stdout.write(line + "\n");
  return 0;
}
