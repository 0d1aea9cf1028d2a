/**
 * MTA-STS (RFC 8461) end to end: policies served over HTTPS on 127.0.0.1:443 (node:https, a certificate from the
 * test's own CA, which ringmta trusts through relay.tls_ca), names from dnsmasq. MX hosts are two SMTP servers on
 * the same port (relay.mx_port): one on 127.0.0.1 without STARTTLS, one on 127.0.0.2 with STARTTLS and a
 * certificate for its name. enforce + no STARTTLS → deferred 4.7.5, never sent in clear; enforce + a valid
 * certificate → delivered over TLS; testing → delivered; the cached policy still applies after a restart with the
 * HTTPS server stopped.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createServer, type Server } from "node:https";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { BUN, canConnect, MAIN, sendMail, simpleMessage, SmtpClient, startServer, waitFor, type Srv } from "../helpers/index.ts";
import { CaptureServer } from "../helpers/capture-server.ts";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import { havePeer, peerTest, type Peer } from "../helpers/peers.ts";
import { makeTestCa, type TestCa } from "../helpers/test-ca.ts";
import { scrape, valueOf } from "../helpers/prometheus.ts";
import { schemaViolations } from "../helpers/tlsrpt-schema.ts";

const PEERS: Peer[] = ["dnsmasq", "openssl"];

const POLICIES: Record<string, string> = {
  "mta-sts.enf.test": "version: STSv1\nmode: enforce\nmx: mx.enf.test\nmax_age: 86400\n",
  "mta-sts.good.test": "version: STSv1\r\nmode: enforce\r\nmx: *.good.test\r\nmax_age: 86400\r\n",
  "mta-sts.tst.test": "version: STSv1\nmode: testing\nmx: mx.tst.test\nmax_age: 86400\n",
  "mta-sts.nomatch.test": "version: STSv1\nmode: enforce\nmx: other.nomatch.test\nmax_age: 86400\n",
  "mta-sts.wrongname.test": "version: STSv1\nmode: enforce\nmx: mx.wrongname.test\nmax_age: 86400\n",
};

interface QueueEntry {
  id: string;
  recipients: Array<{ address: string; state: string; last_reply: string; tls_policy?: string }>;
}

function recipient(srv: Srv, address: string) {
  const r = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv.configPath], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as QueueEntry[]).flatMap((e) => e.recipients).find((x) => x.address === address);
}

async function relay(srv: Srv, to: string, subject: string): Promise<void> {
  const c = await SmtpClient.connect(srv.ports.mx);
  await c.hello();
  const r = await sendMail(c, "alice@example.test", [to], simpleMessage({ subject }));
  expect(r.final?.code).toBe(250);
  await c.cmd("QUIT");
  c.end();
}

describe("MTA-STS policies over HTTPS", () => {
  let ca: TestCa | null = null;
  let https: Server | null = null;
  let plainMx: CaptureServer | null = null;
  let tlsMx: CaptureServer | null = null;
  let dns: Dnsmasq | null = null;
  let srv: Srv | null = null;
  let reports: CaptureServer | null = null;
  const fetched: string[] = [];

  beforeAll(async () => {
    if (!PEERS.every(havePeer)) return;
    ca = makeTestCa();
    const web = ca.leaf(Object.keys(POLICIES), "web");
    const mx = ca.leaf(["mx.good.test"], "mx");
    https = createServer({ cert: web.chain, key: web.key }, (req, res) => {
      const host = String(req.headers.host ?? "").replace(/:\d+$/, "");
      fetched.push(`${host}${req.url}`);
      const body = POLICIES[host];
      if (req.url !== "/.well-known/mta-sts.txt" || body === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" }).end(body);
    });
    await new Promise<void>((resolve, reject) => {
      https!.once("error", reject);
      https!.listen(443, "127.0.0.1", () => resolve());
    });
    plainMx = await CaptureServer.start({ host: "127.0.0.1" });
    tlsMx = await CaptureServer.start({ host: "127.0.0.2", tls: { cert: mx.chain, key: mx.key } }, plainMx.port);
    // broken.test announces a policy that is never served (asked for after the HTTPS server has stopped).
    const domains = ["enf.test", "good.test", "tst.test", "nomatch.test", "wrongname.test", "broken.test"];
    dns = await startDnsmasq({
      zones: domains,
      mx: domains.map((d) => `${d},mx.${d},10`),
      hosts: [
        "mx.enf.test,127.0.0.1",
        "mx.good.test,127.0.0.2",
        "mx.tst.test,127.0.0.1",
        "mx.nomatch.test,127.0.0.2",
        // The TLS MX's certificate names mx.good.test only.
        "mx.wrongname.test,127.0.0.2",
        "mx.broken.test,127.0.0.1",
        ...domains.map((d) => `mta-sts.${d},127.0.0.1`),
      ],
      txt: [
        ...domains.map((d) => `_mta-sts.${d},v=STSv1; id=2026120201`),
        ...domains.map((d) => `_smtp._tls.${d},v=TLSRPTv1; rua=mailto:tlsrpt@reports.test`),
      ],
    });
    reports = await CaptureServer.start();
    srv = await startServer({
      config: `
[dns]
servers = ["${dns.server}"]
[relay]
networks = ["127.0.0.0/8"]
mx_port = ${plainMx.port}
mta_sts = "on"
dane = "off"
tls_ca = "${ca.certFile}"
tls_rpt = true
[relay.routes]
"reports.test" = "127.0.0.1:${reports.port}"
[queue]
retry_intervals = ["1h"]
`,
    });
  }, 90_000);

  afterAll(async () => {
    await srv?.dispose();
    await dns?.stop();
    await plainMx?.close();
    await reports?.close();
    await tlsMx?.close();
    await new Promise((r) => (https ? https.close(r) : r(null)));
    ca?.remove();
  });

  peerTest(PEERS, "enforce, and the MX offers no STARTTLS: deferred with 4.7.5 naming MTA-STS, never sent in clear", async () => {
    await relay(srv!, "bob@enf.test", "sts-enforce-plain");
    await waitFor(() => recipient(srv!, "bob@enf.test")?.state === "deferred", 20_000);
    const r = recipient(srv!, "bob@enf.test")!;
    expect(r.last_reply).toMatch(/^4\d\d 4\.7\.5 .*MTA-STS/);
    expect(r.tls_policy).toBe("mta-sts");
    // `queue show` names the policy that deferred it.
    const list = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv!.configPath], { encoding: "utf8" });
    const id = (JSON.parse(list.stdout) as QueueEntry[]).find((e) => e.recipients.some((x) => x.address === "bob@enf.test"))!.id;
    const show = spawnSync(BUN, [MAIN, "queue", "show", id, "--config", srv!.configPath], { encoding: "utf8" });
    expect(show.status, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout).recipients[0]).toMatchObject({ state: "deferred", tls_policy: "mta-sts", last_reply: expect.stringContaining("4.7.5") });
    expect(fetched).toContain("mta-sts.enf.test/.well-known/mta-sts.txt");
    expect(plainMx!.messages).toEqual([]);
  }, 40_000);

  peerTest(PEERS, "enforce, and the MX has a valid certificate for its name: delivered over TLS", async () => {
    await relay(srv!, "bob@good.test", "sts-enforce-tls");
    await waitFor(() => tlsMx!.messages.length === 1, 20_000);
    expect(tlsMx!.messages[0].tls).toBe(true);
  }, 40_000);

  peerTest(PEERS, "enforce, and no MX host matches the policy: deferred with 4.7.5", async () => {
    await relay(srv!, "bob@nomatch.test", "sts-enforce-nomatch");
    await waitFor(() => recipient(srv!, "bob@nomatch.test")?.state === "deferred", 20_000);
    expect(recipient(srv!, "bob@nomatch.test")!.last_reply).toMatch(/^4\d\d 4\.7\.5 .*MTA-STS/);
    expect(tlsMx!.messages.filter((m) => m.rcptTo.some((a) => a.includes("bob@nomatch.test")))).toEqual([]);
  }, 40_000);

  peerTest(PEERS, "enforce, and the MX's certificate is not for its name: deferred with 4.7.5, nothing sent", async () => {
    await relay(srv!, "bob@wrongname.test", "sts-enforce-wrongname");
    await waitFor(() => recipient(srv!, "bob@wrongname.test")?.state === "deferred", 20_000);
    expect(recipient(srv!, "bob@wrongname.test")!.last_reply).toMatch(/^4\d\d 4\.7\.5 .*MTA-STS/);
    expect(tlsMx!.messages.filter((m) => m.rcptTo.some((a) => a.includes("wrongname")))).toEqual([]);
  }, 40_000);

  peerTest(PEERS, "testing mode: delivered even without STARTTLS", async () => {
    await relay(srv!, "bob@tst.test", "sts-testing");
    await waitFor(() => plainMx!.messages.length === 1, 20_000);
    expect(fetched).toContain("mta-sts.tst.test/.well-known/mta-sts.txt");
  }, 40_000);

  peerTest(PEERS, "ringmta_tls_policy_total counts each policy's successes and failures; delivery.attempt logs name the policy", async () => {
    const { fams } = await scrape(srv!.ports.metrics);
    expect(valueOf(fams, "ringmta_tls_policy_total", { policy: "mta-sts", result: "failure" })).toBeGreaterThanOrEqual(3);
    expect(valueOf(fams, "ringmta_tls_policy_total", { policy: "mta-sts", result: "success" })).toBe(1);
    expect(valueOf(fams, "ringmta_tls_policy_total", { policy: "mta-sts-testing", result: "success" })).toBe(1);
    expect(srv!.logs()).toMatch(/delivery\.attempt[^\n]*bob@enf\.test[^\n]*tls_policy[^\n]*mta-sts/);
  });

  peerTest(PEERS, "the policy cache survives a restart with the HTTPS server stopped", async () => {
    await new Promise((r) => https!.close(r));
    https = null;
    expect(await canConnect(443)).toBe(false);
    await srv!.restart();
    await relay(srv!, "carol@enf.test", "sts-after-restart");
    await waitFor(() => recipient(srv!, "carol@enf.test")?.state === "deferred", 20_000);
    expect(recipient(srv!, "carol@enf.test")!.last_reply).toMatch(/^4\d\d 4\.7\.5 .*MTA-STS/);
    // A SIGHUP (the config re-read) keeps it too.
    process.kill(srv!.pid, "SIGHUP");
    await waitFor(() => srv!.logs().split("carol@enf.test").pop()!.includes("config.reloaded"), 10_000);
    await relay(srv!, "dave@enf.test", "sts-after-sighup");
    await waitFor(() => recipient(srv!, "dave@enf.test")?.state === "deferred", 20_000);
    expect(recipient(srv!, "dave@enf.test")!.last_reply).toMatch(/^4\d\d 4\.7\.5 .*MTA-STS/);
    expect(plainMx!.messages.filter((m) => m.rcptTo.some((a) => a.includes("@enf.test")))).toEqual([]);
  }, 60_000);

  peerTest(PEERS, "TLS-RPT: once the day is over, one gzip'd RFC 8460 report per policy domain reaches the rua mailto:", async () => {
    const dir = join(srv!.dataDir, "tls-rpt");
    const today = new Date().toISOString().slice(0, 10);
    const file = join(dir, `${today}.jsonl`);
    // A domain whose policy cannot be fetched (the HTTPS server is gone): delivered as without a policy (RFC 8461
    // §5), and reported as sts-policy-fetch-error.
    await relay(srv!, "bob@broken.test", "sts-fetch-error");
    await waitFor(() => plainMx!.messages.some((m) => m.rcptTo.some((a) => a.includes("broken.test"))), 30_000);
    await waitFor(() => existsSync(file) && readFileSync(file, "utf8").includes("wrongname.test") && readFileSync(file, "utf8").includes("broken.test"), 10_000);
    expect(reports!.messages).toEqual([]); // the day is not over
    // The results of today's real sessions become yesterday's: the next start finds a finished day and reports it.
    await srv!.stop();
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    renameSync(file, join(dir, `${yesterday}.jsonl`));
    await srv!.restart();
    await waitFor(() => reports!.messages.length >= 6, 20_000);
    const byDomain = new Map<string, Record<string, any>>();
    for (const m of reports!.messages) {
      const text = m.data.toString("latin1");
      expect(m.mailFrom).toMatch(/^<>/);
      expect(m.rcptTo.join(" ")).toContain("tlsrpt@reports.test");
      expect(text).toMatch(/^Content-Type: multipart\/report; report-type="tlsrpt"/m);
      const b64 = /Content-Type: application\/tlsrpt\+gzip;[\s\S]*?\r\n\r\n([\s\S]*?)--tlsrpt-/.exec(text)![1];
      const report = JSON.parse(gunzipSync(Buffer.from(b64.replace(/\r\n/g, ""), "base64")).toString());
      expect(schemaViolations(report)).toEqual([]);
      expect(report["date-range"]["start-datetime"]).toBe(`${yesterday}T00:00:00Z`);
      byDomain.set(report.policies[0].policy["policy-domain"], report);
    }
    const enf = byDomain.get("enf.test")!.policies[0];
    expect(enf.policy["policy-type"]).toBe("sts");
    expect(enf.policy["policy-string"]).toContain("mode: enforce");
    expect(enf.summary["total-failure-session-count"]).toBeGreaterThanOrEqual(2);
    expect(enf["failure-details"][0]).toMatchObject({ "result-type": "starttls-not-supported", "receiving-mx-hostname": "mx.enf.test", "receiving-ip": "127.0.0.1" });
    expect(byDomain.get("good.test")!.policies[0].summary).toEqual({ "total-successful-session-count": 1, "total-failure-session-count": 0 });
    expect(byDomain.get("wrongname.test")!.policies[0]["failure-details"][0]["result-type"]).toBe("certificate-host-mismatch");
    expect(byDomain.get("nomatch.test")!.policies[0]["failure-details"][0]["result-type"]).toBe("validation-failure");
    const tst = byDomain.get("tst.test")!.policies[0];
    expect(tst.policy["policy-string"]).toContain("mode: testing");
    // Testing mode delivered in clear (the MX has no STARTTLS), and says so in the report.
    expect(tst["failure-details"][0]).toMatchObject({ "result-type": "starttls-not-supported", "receiving-mx-hostname": "mx.tst.test" });
    expect(byDomain.get("broken.test")!.policies[0]).toMatchObject({
      policy: { "policy-type": "sts", "policy-domain": "broken.test" },
      "failure-details": [{ "result-type": "sts-policy-fetch-error", "receiving-mx-hostname": "mx.broken.test" }],
    });
    // The day is marked sent: a further start sends nothing again.
    expect(existsSync(join(dir, `${yesterday}.jsonl.sent`))).toBe(true);
  }, 60_000);
});
