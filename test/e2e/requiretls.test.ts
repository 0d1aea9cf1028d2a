/**
 * REQUIRETLS (RFC 8689) end to end. A message received with `MAIL FROM:<…> REQUIRETLS` (over TLS) goes through a
 * smart host whose certificate is verified (relay.smarthost_ca: the test CA):
 * - to a second ringmta, which offers REQUIRETLS under TLS: delivered to its Maildir;
 * - to an SMTP server that offers REQUIRETLS: the MAIL command carries the parameter;
 * - to a real Postfix, which does not offer REQUIRETLS: returned at once with 5.7.30, nothing delivered, and the
 *   bounce reaches the (local) sender;
 * - and with no authenticated route at all (an opportunistic MX through relay.routes): 5.7.30 too.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { BUN, MAIN, maildirFiles, simpleMessage, SmtpClient, startServer, waitFor, type Srv } from "../helpers/index.ts";
import { CaptureServer } from "../helpers/capture-server.ts";
import { havePeer, peerTest, type Peer } from "../helpers/peers.ts";
import { startPostfix, type Postfix } from "../helpers/postfix.ts";
import { makeTestCa, type Leaf, type TestCa } from "../helpers/test-ca.ts";
import { dataPayload } from "../helpers/smtp-client.ts";

const PEERS: Peer[] = ["openssl", "postfix"];

interface QueueEntry {
  recipients: Array<{ address: string; state: string; last_reply: string }>;
}

function recipient(srv: Srv, address: string) {
  const r = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv.configPath], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as QueueEntry[]).flatMap((e) => e.recipients).find((x) => x.address === address);
}

/** Send over STARTTLS with REQUIRETLS; resolves with the reply to the end of data. */
async function sendRequireTls(srv: Srv, to: string, subject: string): Promise<number> {
  const c = await SmtpClient.connect(srv.ports.mx);
  await c.hello();
  expect((await c.startTls()).code).toBe(220);
  const ehlo = await c.cmd("EHLO client.test");
  expect(ehlo.lines).toContain("REQUIRETLS");
  expect((await c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS")).code).toBe(250);
  expect((await c.cmd(`RCPT TO:<${to}>`)).code).toBe(250);
  expect((await c.cmd("DATA")).code).toBe(354);
  await c.send(dataPayload(simpleMessage({ subject, to })));
  const r = await c.readReply();
  await c.cmd("QUIT");
  c.end();
  return r.code;
}

describe("REQUIRETLS between servers", () => {
  let ca: TestCa | null = null;
  let leaf: Leaf;
  let b: Srv | null = null;
  let capture: CaptureServer | null = null;
  let pf: Postfix | null = null;
  const senders: Srv[] = [];

  const sender = async (relay: string): Promise<Srv> => {
    const s = await startServer({
      config: `
[queue]
retry_intervals = ["1h"]
[relay]
networks = ["127.0.0.0/8"]
smarthost_ca = "${ca!.certFile}"
${relay}
`,
    });
    senders.push(s);
    return s;
  };

  beforeAll(async () => {
    if (!PEERS.every(havePeer)) return;
    ca = makeTestCa();
    leaf = ca.leaf(["localhost", "127.0.0.1"]);
    b = await startServer({
      config: `
[tls]
cert = "${leaf.chainFile}"
key = "${leaf.keyFile}"
[local]
domains = ["far.test"]
catch_all = true
`,
    });
    capture = await CaptureServer.start({
      tls: { cert: leaf.chain, key: leaf.key },
      ehlo: ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "REQUIRETLS"],
    });
    pf = await startPostfix("requiretls", {
      virtualDomains: ["far.test"],
      mailboxes: ["bob@far.test"],
      extra: [`smtpd_tls_chain_files = ${leaf.keyFile}, ${leaf.chainFile}`, "smtpd_tls_security_level = may"].join("\n"),
    });
  }, 90_000);

  afterAll(async () => {
    for (const s of senders) await s.dispose();
    await b?.dispose();
    await capture?.close();
    await pf?.stop();
    ca?.remove();
  });

  peerTest(PEERS, "ringmta → ringmta over the verified smart host: delivered", async () => {
    const a = await sender(`smarthost = "127.0.0.1:${b!.ports.mx}"\nsmarthost_tls = "starttls"`);
    expect(await sendRequireTls(a, "bob@far.test", "rt-ringmta")).toBe(250);
    await waitFor(() => maildirFiles(b!.dataDir, "far.test", "bob").length === 1, 20_000);
    expect(readFileSync(maildirFiles(b!.dataDir, "far.test", "bob")[0], "utf8")).toContain("Subject: rt-ringmta");
  }, 60_000);

  peerTest(PEERS, "the MAIL command to a next hop that offers REQUIRETLS carries the parameter, over TLS", async () => {
    const a = await sender(`smarthost = "127.0.0.1:${capture!.port}"\nsmarthost_tls = "starttls"`);
    expect(await sendRequireTls(a, "bob@far.test", "rt-capture")).toBe(250);
    await waitFor(() => capture!.messages.length === 1, 20_000);
    expect(capture!.messages[0].mailFrom).toMatch(/^<alice@example\.test>.* REQUIRETLS/);
    expect(capture!.messages[0].tls).toBe(true);
  }, 60_000);

  peerTest(PEERS, "to a Postfix that does not offer REQUIRETLS: failed with 5.7.30 at once, nothing delivered, bounced", async () => {
    const a = await sender(`smarthost = "127.0.0.1:${pf!.port}"\nsmarthost_tls = "starttls"`);
    expect(await sendRequireTls(a, "bob@far.test", "rt-postfix")).toBe(250);
    // The bounce (RFC 3464) reaches the local sender; it names 5.7.30.
    const bounce = await waitFor(() => maildirFiles(a.dataDir, "example.test", "alice").map((f) => readFileSync(f, "utf8")).find((m) => m.includes("5.7.30")), 20_000);
    expect(bounce).toMatch(/Status: 5\.7\.30/);
    expect(pf!.delivered("far.test", "bob")).toEqual([]);
  }, 60_000);

  peerTest(PEERS, "no authenticated route (an opportunistic transport-map entry): 5.7.30, never sent", async () => {
    const plain = await CaptureServer.start({ ehlo: ["PIPELINING", "REQUIRETLS"] });
    try {
      const a = await sender(`[relay.routes]\n"far.test" = "127.0.0.1:${plain.port}"`);
      expect(await sendRequireTls(a, "bob@far.test", "rt-route")).toBe(250);
      await waitFor(() => recipient(a, "bob@far.test")?.state === "failed" || maildirFiles(a.dataDir, "example.test", "alice").length > 0, 20_000);
      const bounce = await waitFor(() => maildirFiles(a.dataDir, "example.test", "alice").map((f) => readFileSync(f, "utf8")).find((m) => m.includes("5.7.30")), 20_000);
      expect(bounce).toContain("REQUIRETLS");
      expect(plain.messages).toEqual([]);
    } finally {
      await plain.close();
    }
  }, 60_000);
});
