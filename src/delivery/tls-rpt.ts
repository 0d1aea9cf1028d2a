/**
 * TLS-RPT (RFC 8460), the sending side: the result of each TLS session tried under a policy (DANE or MTA-STS) is
 * kept per UTC day in `DATA/tls-rpt/<YYYY-MM-DD>.jsonl` (one line per result, written in batches by the main
 * thread); once a day is over, one aggregate report per policy domain (§4, the JSON of §4.4) is made, gzip'd
 * (§5.3), and mailed to the `mailto:` addresses of the domain's `_smtp._tls` TXT record (§3). A day's file is then
 * renamed `.sent`. Opt-in (relay.tls_rpt): reports to addresses taken from DNS get a careless sender blocklisted.
 */
import { Buffer } from "node:buffer";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import type { DnsLookup } from "../dns/index.ts";
import type { OwnRoute, SpoolPort, TlsRptResult } from "../mail/index.ts";

/** "YYYY-MM-DD" of a time, in UTC (§4.4: date-range covers whole UTC days). */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Buffered, per-day append of results; flushed every `flushMs` and at close. */
export class TlsRptLog {
  private pending = new Map<string, string[]>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
    flushMs = 2000,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (flushMs > 0) {
      this.timer = setInterval(() => this.flush(), flushMs);
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  record(r: TlsRptResult): void {
    const day = utcDay(this.now());
    const list = this.pending.get(day);
    const line = JSON.stringify(r);
    if (list) list.push(line);
    else this.pending.set(day, [line]);
  }

  flush(): void {
    const batches = this.pending;
    this.pending = new Map();
    for (const [day, lines] of batches) appendFileSync(join(this.dir, `${day}.jsonl`), `${lines.join("\n")}\n`, { mode: 0o600 });
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.flush();
  }
}

/** §3: "v=TLSRPTv1; rua=mailto:a@b,https://…" → the mailto addresses (https endpoints are not used here). */
export function parseTlsRptTxt(records: readonly string[]): string[] {
  const rec = records.filter((r) => /^v=TLSRPTv1\s*(;|$)/.test(r));
  if (rec.length !== 1) return []; // §3: several records: none applies
  const m = /(?:^|;)\s*rua=([^;]*)/.exec(rec[0]);
  if (m === null) return [];
  const out: string[] = [];
  for (const uri of m[1].split(",")) {
    const t = uri.trim();
    if (!/^mailto:/i.test(t)) continue;
    const addr = decodeURIComponent(t.slice(7).split("?")[0]);
    if (/^[^\s@<>]+@[A-Za-z0-9.-]+$/.test(addr) && out.length < 5) out.push(addr);
  }
  return out;
}

/** The RFC 8460 §4.4 report of one policy domain for one UTC day. */
export interface TlsRptReport {
  "organization-name": string;
  "date-range": { "start-datetime": string; "end-datetime": string };
  "contact-info": string;
  "report-id": string;
  policies: Array<{
    policy: { "policy-type": "sts" | "tlsa" | "no-policy-found"; "policy-string": string[]; "policy-domain": string; "mx-host"?: string[] };
    summary: { "total-successful-session-count": number; "total-failure-session-count": number };
    "failure-details"?: Array<{ "result-type": string; "receiving-mx-hostname": string; "receiving-ip"?: string; "failed-session-count": number }>;
  }>;
}

/** Aggregate one day's results for `domain` (§4.4): one policy entry per policy type and policy string. */
export function buildReport(day: string, domain: string, results: readonly TlsRptResult[], org: string, contact: string): TlsRptReport {
  const policies = new Map<string, TlsRptReport["policies"][number]>();
  const failures = new Map<string, { "result-type": string; "receiving-mx-hostname": string; "receiving-ip"?: string; "failed-session-count": number }>();
  for (const r of results) {
    if (r.domain !== domain) continue;
    const key = `${r.policyType}\n${r.policyString.join("\n")}`;
    let p = policies.get(key);
    if (p === undefined) {
      p = {
        policy: { "policy-type": r.policyType, "policy-string": r.policyString, "policy-domain": domain },
        summary: { "total-successful-session-count": 0, "total-failure-session-count": 0 },
      };
      if (r.policyType === "sts") p.policy["mx-host"] = r.policyString.filter((l) => l.startsWith("mx: ")).map((l) => l.slice(4));
      policies.set(key, p);
    }
    if (r.failure === undefined) {
      p.summary["total-successful-session-count"]++;
      continue;
    }
    p.summary["total-failure-session-count"]++;
    const fkey = `${key}\n${r.failure}\n${r.mxHost}\n${r.receivingIp ?? ""}`;
    let f = failures.get(fkey);
    if (f === undefined) {
      f = { "result-type": r.failure, "receiving-mx-hostname": r.mxHost, "failed-session-count": 0 };
      if (r.receivingIp !== undefined) f["receiving-ip"] = r.receivingIp;
      failures.set(fkey, f);
      (p["failure-details"] ??= []).push(f);
    }
    f["failed-session-count"]++;
  }
  return {
    "organization-name": org,
    "date-range": { "start-datetime": `${day}T00:00:00Z`, "end-datetime": `${day}T23:59:59Z` },
    "contact-info": contact,
    "report-id": `${day}_${domain}_${randomBytes(6).toString("hex")}@${org}`,
    policies: [...policies.values()],
  };
}

/**
 * §5.3: the report as a message: multipart/report; report-type="tlsrpt", a text part, and the gzip'd JSON as
 * application/tlsrpt+gzip named per §5.1 (`<sender>!<policy-domain>!<begin>!<end>!<unique>.json.gz`).
 */
export function reportMessage(o: { hostname: string; from: string; to: string[]; domain: string; report: TlsRptReport; now: number }): Uint8Array {
  const gz = gzipSync(Buffer.from(JSON.stringify(o.report)));
  const b64 = gz.toString("base64").replace(/.{1,76}/g, "$&\r\n");
  const boundary = `tlsrpt-${randomBytes(8).toString("hex")}`;
  const begin = Math.floor(Date.parse(o.report["date-range"]["start-datetime"]) / 1000);
  const end = Math.floor(Date.parse(o.report["date-range"]["end-datetime"]) / 1000);
  const file = `${o.hostname}!${o.domain}!${begin}!${end}!${randomBytes(4).toString("hex")}.json.gz`;
  const text =
    `From: <${o.from}>\r\n` +
    `To: ${o.to.map((a) => `<${a}>`).join(", ")}\r\n` +
    `Subject: Report Domain: ${o.domain} Submitter: ${o.hostname} Report-ID: <${o.report["report-id"]}>\r\n` +
    `Date: ${new Date(o.now).toUTCString().replace("GMT", "+0000")}\r\n` +
    `Message-ID: <${randomBytes(12).toString("hex")}@${o.hostname}>\r\n` +
    `TLS-Report-Domain: ${o.domain}\r\n` +
    `TLS-Report-Submitter: ${o.hostname}\r\n` +
    "MIME-Version: 1.0\r\n" +
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"\r\n` +
    "\r\n" +
    `--${boundary}\r\n` +
    "Content-Type: text/plain; charset=us-ascii\r\n\r\n" +
    `This is an aggregate TLS report from ${o.hostname} for ${o.domain}.\r\n\r\n` +
    `--${boundary}\r\n` +
    `Content-Type: application/tlsrpt+gzip; name="${file}"\r\n` +
    "Content-Transfer-Encoding: base64\r\n" +
    `Content-Disposition: attachment; filename="${file}"\r\n\r\n` +
    b64 +
    `--${boundary}--\r\n`;
  return new TextEncoder().encode(text);
}

/** Days with results that are over and not sent yet: `<day>.jsonl` with day before today (UTC). */
export function dueDays(dir: string, now: number): string[] {
  const today = utcDay(now);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(n) && n.slice(0, 10) < today)
    .map((n) => n.slice(0, 10))
    .sort();
}

/** A day's results (a torn or foreign line is skipped). */
export function readDay(dir: string, day: string): TlsRptResult[] {
  const out: TlsRptResult[] = [];
  for (const line of readFileSync(join(dir, `${day}.jsonl`), "utf8").split("\n")) {
    if (line === "") continue;
    try {
      const r = JSON.parse(line) as TlsRptResult;
      if (typeof r.domain === "string" && (r.policyType === "sts" || r.policyType === "tlsa") && Array.isArray(r.policyString)) out.push(r);
    } catch {
      // a line cut by a crash
    }
  }
  return out;
}

export function markSent(dir: string, day: string): void {
  renameSync(join(dir, `${day}.jsonl`), join(dir, `${day}.jsonl.sent`));
}

export interface TlsRptSenderOptions {
  dir: string;
  /** Read at each run (a SIGHUP may change it): our name, organization-name and From's domain. */
  hostname(): string;
  dns: DnsLookup;
  spool: SpoolPort;
  /** Where our own mail to `address` goes (Policy.routeOwn). */
  routeOwn(address: string): OwnRoute;
  log: { info(event: string, fields: Record<string, unknown>): void; warn(event: string, fields: Record<string, unknown>): void };
  /** DKIM-Signature fields (CRLF-terminated) for a report, when we have a key for its From domain; else null. */
  sign?(message: Uint8Array): string | null;
  now?: () => number;
}

/** Sends the reports of finished days (§4.1: once per day per policy domain). */
export class TlsRptSender {
  private running: Promise<void> | null = null;

  constructor(private readonly o: TlsRptSenderOptions) {}

  /** One pass over the finished days; concurrent calls share the pass. */
  run(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    for (const day of dueDays(this.o.dir, now)) {
      const results = readDay(this.o.dir, day);
      const domains = [...new Set(results.map((r) => r.domain))];
      for (const domain of domains) {
        try {
          await this.sendOne(day, domain, results, now);
        } catch (err) {
          this.o.log.warn("tlsrpt.error", { day, domain, error: String(err) });
        }
      }
      markSent(this.o.dir, day);
    }
  }

  private async sendOne(day: string, domain: string, results: TlsRptResult[], now: number): Promise<void> {
    const txt = await this.o.dns.lookup(`_smtp._tls.${domain}`, "TXT");
    const rua = txt.status === "ok" ? parseTlsRptTxt(txt.records) : [];
    if (rua.length === 0) {
      this.o.log.info("tlsrpt.skipped", { day, domain, reason: txt.status === "ok" ? "no mailto: rua" : `TXT ${txt.status}` });
      return;
    }
    const hostname = this.o.hostname();
    const from = `tlsrpt-noreply@${hostname}`;
    const report = buildReport(day, domain, results, hostname, `postmaster@${hostname}`);
    const targets = rua.flatMap((a) => {
      const r = this.o.routeOwn(a);
      return r.kind === "accept" ? r.targets : [];
    });
    if (targets.length === 0) {
      this.o.log.info("tlsrpt.skipped", { day, domain, reason: "no route to the rua addresses" });
      return;
    }
    const message = reportMessage({ hostname, from, to: rua, domain, report, now });
    // §5.3: reports should be DKIM-signed; with a key for our hostname's domain they are.
    const signature = this.o.sign?.(message) ?? null;
    const sink = this.o.spool.begin();
    try {
      sink.write(message);
      await sink.commit({
        // The null sender: a report that cannot be delivered is never bounced back to us (RFC 5321 §4.5.5).
        sender: "",
        recipients: targets.map((t) => ({ rcpt: t.address, address: t.address, route: t.route })),
        body: "7BIT",
        smtputf8: false,
        client: { address: "127.0.0.1", helo: hostname, listener: "tls-rpt" },
        arrival: 0,
      }, signature === null ? undefined : new TextEncoder().encode(signature.endsWith("\r\n") ? signature : `${signature}\r\n`));
    } catch (err) {
      sink.abort();
      throw err;
    }
    this.o.log.info("tlsrpt.queued", { day, domain, to: rua, id: sink.id, policies: report.policies.length });
  }
}
