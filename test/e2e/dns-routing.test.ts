/**
 * The real server routing through dns/ with a DNS server that misbehaves: garbage answers, then SERVFAIL, leave
 * the message deferred (451 4.4.3, no DSN: never bounced, never lost); once the server answers, the message is
 * delivered to the MX it names.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BUN, MAIN, maildirFiles, sendMail, simpleMessage, SmtpClient, startServer, waitFor, type Srv } from "../helpers/index.ts";
import { CaptureServer } from "../helpers/capture-server.ts";
import { reply, startDnsStub, type DnsStub } from "../helpers/dns-stub.ts";

interface QueueEntry {
  id: string;
  recipients: Array<{ address: string; state: string; attempts: number; last_reply: string }>;
}

function queueList(srv: Srv): QueueEntry[] {
  const r = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv.configPath], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as QueueEntry[];
}

describe("routing through a broken DNS server", () => {
  let mode: "garbage" | "servfail" | "good" = "garbage";
  let dns: DnsStub;
  let cap: CaptureServer;
  let srv: Srv;
  beforeAll(async () => {
    cap = await CaptureServer.start();
    dns = await startDnsStub((q, raw) => {
      const { name, type } = q.questions![0];
      if (mode === "garbage") return [Buffer.concat([raw.subarray(0, 2), Buffer.from("\xff\xff\xff\xffnot dns at all")])];
      if (mode === "servfail") return [reply(q, { rcode: 2 })];
      if (name === "far.test" && type === "MX") return [reply(q, { answers: [{ type: "MX", name, ttl: 0, data: { preference: 10, exchange: "mx.far.test" } }] })];
      if (name === "mx.far.test" && type === "A") return [reply(q, { answers: [{ type: "A", name, ttl: 0, data: "127.0.0.1" }] })];
      return [reply(q, {})];
    });
    srv = await startServer({
      config: `
dns = { servers = ["${dns.server}"] }
[relay]
networks = ["127.0.0.0/8"]
mx_port = ${cap.port}
[queue]
retry_intervals = ["1h"]
`,
    });
  }, 60_000);
  afterAll(async () => {
    await srv?.dispose();
    await dns?.stop();
    await cap?.close();
  });

  test("garbage and SERVFAIL defer with 451 4.4.3 and no DSN; when DNS answers, the message is delivered", async () => {
    const c = await SmtpClient.connect(srv.ports.mx);
    await c.hello();
    const r = await sendMail(c, "alice@example.test", ["bob@far.test"], simpleMessage({ subject: "dns-garbage" }));
    expect(r.final?.code).toBe(250);
    await c.cmd("QUIT").catch(() => undefined);
    c.destroy();
    const deferred = await waitFor(() => {
      const q = queueList(srv).find((e) => e.recipients.some((x) => x.address === "bob@far.test" && x.state === "deferred"));
      return q ?? null;
    }, 20_000);
    expect(deferred.recipients[0].last_reply).toMatch(/^451 4\.4\.3 DNS lookup of MX of far\.test failed: servfail/);

    mode = "servfail";
    expect(spawnSync(BUN, [MAIN, "queue", "flush", "--config", srv.configPath]).status).toBe(0);
    await waitFor(() => (queueList(srv)[0]?.recipients[0].attempts ?? 0) >= 2 || null, 20_000);
    expect(queueList(srv)[0].recipients[0]).toMatchObject({ state: "deferred", last_reply: expect.stringMatching(/^451 4\.4\.3 /) });
    const dsns = maildirFiles(srv.dataDir, "example.test", "alice").filter((f) => readFileSync(f, "utf8").includes("multipart/report"));
    expect(dsns).toEqual([]);

    mode = "good";
    expect(spawnSync(BUN, [MAIN, "queue", "flush", "--config", srv.configPath]).status).toBe(0);
    await waitFor(() => cap.messages.some((m) => m.rcptTo[0] === "<bob@far.test>") || null, 20_000);
    await waitFor(() => queueList(srv).length === 0 || null, 10_000);
  });
});
