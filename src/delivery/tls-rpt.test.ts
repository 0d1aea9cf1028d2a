/**
 * TLS-RPT (RFC 8460): a day of mixed results aggregates into a report that satisfies the §4.4 JSON schema (checked
 * field by field below, as the RFC's schema states them), the `_smtp._tls` record's mailto: rua is read (§3), and
 * the report message carries the gzip'd JSON as application/tlsrpt+gzip (§5.3).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { mailauthVerify } from "../../test/helpers/dkim.ts";
import { DkimKeyring, publicRecord, signMessage, type DkimKey } from "../dkim/index.ts";
import type { DnsLookup, DnsResult, RecordType } from "../dns/index.ts";
import type { Envelope, MessageSink, OwnRoute } from "../mail/index.ts";
import type { TlsRptResult } from "../mail/index.ts";
import { schemaViolations } from "../../test/helpers/tlsrpt-schema.ts";
import { buildReport, dueDays, parseTlsRptTxt, readDay, reportMessage, TlsRptLog, TlsRptSender } from "./tls-rpt.ts";

const STS = ["version: STSv1", "mode: enforce", "mx: mx.a.test", "max_age: 86400"];
const day: TlsRptResult[] = [
  ...Array.from({ length: 7 }, (): TlsRptResult => ({ domain: "a.test", policyType: "sts", policyString: STS, mxHost: "mx.a.test", receivingIp: "192.0.2.1" })),
  { domain: "a.test", policyType: "sts", policyString: STS, mxHost: "mx.a.test", receivingIp: "192.0.2.1", failure: "starttls-not-supported" },
  { domain: "a.test", policyType: "sts", policyString: STS, mxHost: "mx.a.test", receivingIp: "192.0.2.1", failure: "starttls-not-supported" },
  { domain: "a.test", policyType: "sts", policyString: STS, mxHost: "mx.a.test", receivingIp: "192.0.2.2", failure: "certificate-host-mismatch" },
  { domain: "b.test", policyType: "tlsa", policyString: ["3 1 1 abcd"], mxHost: "mx.b.test", failure: "validation-failure" },
];

describe("TLS-RPT", () => {
  test("a day of mixed results: counts and failure details per policy; the report satisfies the RFC 8460 schema", () => {
    const r = buildReport("2026-12-01", "a.test", day, "mx.example.test", "postmaster@mx.example.test");
    expect(schemaViolations(r)).toEqual([]);
    expect(r["date-range"]).toEqual({ "start-datetime": "2026-12-01T00:00:00Z", "end-datetime": "2026-12-01T23:59:59Z" });
    expect(r.policies).toHaveLength(1);
    const p = r.policies[0];
    expect(p.policy).toEqual({ "policy-type": "sts", "policy-string": STS, "policy-domain": "a.test", "mx-host": ["mx.a.test"] });
    expect(p.summary).toEqual({ "total-successful-session-count": 7, "total-failure-session-count": 3 });
    expect(p["failure-details"]).toEqual([
      { "result-type": "starttls-not-supported", "receiving-mx-hostname": "mx.a.test", "receiving-ip": "192.0.2.1", "failed-session-count": 2 },
      { "result-type": "certificate-host-mismatch", "receiving-mx-hostname": "mx.a.test", "receiving-ip": "192.0.2.2", "failed-session-count": 1 },
    ]);
    const b = buildReport("2026-12-01", "b.test", day, "mx.example.test", "postmaster@mx.example.test");
    expect(schemaViolations(b)).toEqual([]);
    expect(b.policies[0].summary).toEqual({ "total-successful-session-count": 0, "total-failure-session-count": 1 });
  });

  test("the _smtp._tls record (§3): mailto: addresses of exactly one TLSRPTv1 record", () => {
    expect(parseTlsRptTxt(["v=TLSRPTv1; rua=mailto:reports@a.test,https://r.a.test/x"])).toEqual(["reports@a.test"]);
    expect(parseTlsRptTxt(["v=TLSRPTv1;rua=mailto:x@a.test, mailto:y%40z@b.test"])).toEqual(["x@a.test"]);
    expect(parseTlsRptTxt(["v=TLSRPTv1; rua=mailto:a@a.test", "v=TLSRPTv1; rua=mailto:b@a.test"])).toEqual([]);
    expect(parseTlsRptTxt(["v=spf1 -all"])).toEqual([]);
  });

  test("the message: multipart/report tlsrpt with the gzip'd JSON (§5.3)", () => {
    const report = buildReport("2026-12-01", "a.test", day, "mx.example.test", "postmaster@mx.example.test");
    const text = new TextDecoder().decode(reportMessage({ hostname: "mx.example.test", from: "tlsrpt-noreply@mx.example.test", to: ["r@a.test"], domain: "a.test", report, now: Date.UTC(2026, 11, 2) }));
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type="tlsrpt"/m);
    expect(text).toMatch(/^TLS-Report-Domain: a\.test\r$/m);
    expect(text).toMatch(/^Subject: Report Domain: a\.test Submitter: mx\.example\.test Report-ID: </m);
    const b64 = /Content-Type: application\/tlsrpt\+gzip; name="mx\.example\.test!a\.test!1796083200!1796169599![0-9a-f]+\.json\.gz"[\s\S]*?\r\n\r\n([\s\S]*?)--tlsrpt-/.exec(text)![1];
    expect(JSON.parse(gunzipSync(Buffer.from(b64.replace(/\r\n/g, ""), "base64")).toString())).toEqual(report);
  });

  test("results are kept per UTC day; only finished days are due; torn lines are skipped", () => {
    const dir = mkdtempSync(join(tmpdir(), "ringmta-tlsrpt-"));
    try {
      let now = Date.UTC(2026, 11, 1, 23, 59);
      const log = new TlsRptLog(dir, () => now, 0);
      log.record(day[0]);
      now = Date.UTC(2026, 11, 2, 0, 1);
      log.record(day[7]);
      log.flush();
      expect(readdirSync(dir).sort()).toEqual(["2026-12-01.jsonl", "2026-12-02.jsonl"]);
      expect(dueDays(dir, now)).toEqual(["2026-12-01"]);
      expect(readDay(dir, "2026-12-02")).toEqual([day[7]]);
      log.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the sender: finished days only, one report per domain with a rua, signed with our DKIM key, the day marked sent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ringmta-tlsrpt-"));
    try {
      writeFileSync(join(dir, "2026-12-01.jsonl"), day.map((r) => JSON.stringify(r)).join("\n") + "\n{torn");
      writeFileSync(join(dir, "2026-12-02.jsonl"), JSON.stringify(day[0]) + "\n");
      const dns: DnsLookup = {
        async lookup<T extends RecordType>(name: string, type: T): Promise<DnsResult<T>> {
          const records = name === "_smtp._tls.a.test" && type === "TXT" ? ["v=TLSRPTv1; rua=mailto:rpt@reports.test"] : [];
          return { status: records.length > 0 ? "ok" : "nxdomain", records, ad: false, ttl: 60, cnames: [] } as unknown as DnsResult<T>;
        },
      };
      const committed: Array<{ bytes: Buffer; envelope: Envelope }> = [];
      const spool = {
        begin(): MessageSink {
          const parts: Buffer[] = [];
          return {
            id: `q${committed.length}`,
            get size() {
              return parts.reduce((n, p) => n + p.length, 0);
            },
            write: (b: Uint8Array) => void parts.push(Buffer.from(b)),
            commit: async (envelope: Envelope, prepend?: Uint8Array) =>
              void committed.push({ bytes: Buffer.concat([...(prepend ? [Buffer.from(prepend)] : []), ...parts]), envelope }),
            abort: () => undefined,
          };
        },
      };
      const key: DkimKey = { domain: "example.test", selector: "rpt", algorithm: "ed25519-sha256", key: generateKeyPairSync("ed25519").privateKey, file: "rpt.key" };
      const keyring = new DkimKeyring(new Map([["example.test", [key]]]));
      const events: string[] = [];
      const sender = new TlsRptSender({
        dir,
        hostname: () => "mx.example.test",
        dns,
        spool,
        routeOwn: (a): OwnRoute => ({ kind: "accept", targets: [{ address: a, route: { kind: "remote", domain: a.split("@")[1] } }] }),
        log: { info: (e) => void events.push(e), warn: (e) => void events.push(e) },
        sign: (m) => {
          const r = signMessage(m, keyring, Date.UTC(2026, 11, 2));
          return r.kind === "signed" ? r.fields : null;
        },
        now: () => Date.UTC(2026, 11, 2, 1),
      });
      await sender.run();
      // a.test has a rua; b.test has none (skipped). Today's file waits.
      expect(committed).toHaveLength(1);
      expect(committed[0].envelope).toMatchObject({ sender: "", recipients: [{ address: "rpt@reports.test" }] });
      expect(events).toEqual(["tlsrpt.queued", "tlsrpt.skipped"]);
      const text = committed[0].bytes.toString("latin1");
      expect(text).toMatch(/^DKIM-Signature: .*d=example\.test/);
      const records = new Map([["rpt._domainkey.example.test", publicRecord(key.key)]]);
      expect(await mailauthVerify(committed[0].bytes, records, new Date(Date.UTC(2026, 11, 2)))).toEqual(["rpt:pass"]);
      expect(existsSync(join(dir, "2026-12-01.jsonl.sent"))).toBe(true);
      expect(existsSync(join(dir, "2026-12-02.jsonl"))).toBe(true);
      await sender.run();
      expect(committed).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
