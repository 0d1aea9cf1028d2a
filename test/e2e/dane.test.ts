/**
 * DANE (RFC 7672) end to end: the real server resolves through a validating unbound serving a zone signed at test
 * time, and delivers to a real Postfix MX (relay.mx_port pointed at it) whose certificate the TLSA records name
 * or do not. A matching TLSA delivers over TLS; a mismatching one defers with 4.7.5 and nothing reaches Postfix;
 * the same zone through a non-validating forwarder (dnsmasq, which clears AD) is plain opportunistic TLS.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { BUN, MAIN, sendMail, simpleMessage, SmtpClient, startServer, waitFor, type Srv } from "../helpers/index.ts";
import { startDnsmasq, type Dnsmasq } from "../helpers/dnsmasq.ts";
import { havePeer, peerTest, type Peer } from "../helpers/peers.ts";
import { startPostfix, type Postfix } from "../helpers/postfix.ts";
import { makeTestCa, tlsaData, type TestCa } from "../helpers/test-ca.ts";
import { startValidatingUnbound, type Unbound } from "../helpers/unbound.ts";

const PEERS: Peer[] = ["unbound", "ldns-keygen", "ldns-signzone", "postfix", "openssl", "dnsmasq"];

interface QueueEntry {
  recipients: Array<{ address: string; state: string; last_reply: string }>;
}

function queueList(srv: Srv): QueueEntry[] {
  const r = spawnSync(BUN, [MAIN, "queue", "list", "--json", "--config", srv.configPath], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as QueueEntry[];
}

function recipient(srv: Srv, address: string) {
  return queueList(srv).flatMap((e) => e.recipients).find((r) => r.address === address);
}

async function relay(srv: Srv, to: string, subject: string, head = ""): Promise<void> {
  const c = await SmtpClient.connect(srv.ports.mx);
  await c.hello();
  const r = await sendMail(c, "alice@example.test", [to], Buffer.concat([Buffer.from(head), simpleMessage({ subject })]));
  expect(r.final?.code).toBe(250);
  await c.cmd("QUIT");
  c.end();
}

describe("DANE with a validating resolver and a real Postfix MX", () => {
  let ca: TestCa | null = null;
  let other: TestCa | null = null;
  let pf: Postfix | null = null;
  let ub: Unbound | null = null;
  let forwarder: Dnsmasq | null = null;
  let validating: Srv | null = null;
  let plain: Srv | null = null;

  beforeAll(async () => {
    if (!PEERS.every(havePeer)) return;
    ca = makeTestCa();
    other = makeTestCa("not the MX's CA");
    const leaf = ca.leaf(["mx.dane.test", "mxbad.dane.test", "mxta.dane.test"]);
    // Absurd records: a "SHA-256" of 1,000 bytes, a 4,000-byte "full" key under an unknown selector, usage 255.
    const absurd = [`3 1 1 ${"ab".repeat(1000)}`, `3 7 0 ${"cd".repeat(4000)}`, `255 1 1 ${"ef".repeat(32)}`];
    const stranger = other.leaf(["mx.dane.test"]);
    pf = await startPostfix("dane", {
      virtualDomains: ["dane.test", "bad.dane.test", "ta.dane.test", "tan.dane.test", "odd.dane.test"],
      mailboxes: ["bob@dane.test", "bob@bad.dane.test", "bob@ta.dane.test", "bob@tan.dane.test", "bob@odd.dane.test"],
      extra: [
        `smtpd_tls_chain_files = ${leaf.keyFile}, ${leaf.chainFile}`,
        "smtpd_tls_security_level = may",
        "smtpd_tls_loglevel = 1",
      ].join("\n"),
    });
    const port = pf.port;
    ub = await startValidatingUnbound({
      signed: {
        "dane.test": [
          "@ IN MX 10 mx.dane.test.",
          "mx IN A 127.0.0.1",
          `_${port}._tcp.mx IN TLSA 3 1 1 ${tlsaData(leaf.cert, 1, 1)}`,
          "bad IN MX 10 mxbad.dane.test.",
          "mxbad IN A 127.0.0.1",
          // The key of another certificate: Postfix's certificate does not match (RFC 7672 §2.2: defer).
          `_${port}._tcp.mxbad IN TLSA 3 1 1 ${tlsaData(stranger.cert, 1, 1)}`,
          // DANE-TA (2 0 1): the CA that Postfix sends in its chain; the leaf names mxta but not mxtan (§3.2.2).
          "ta IN MX 10 mxta.dane.test.",
          "mxta IN A 127.0.0.1",
          `_${port}._tcp.mxta IN TLSA 2 0 1 ${tlsaData(ca.cert, 0, 1)}`,
          "odd IN MX 10 mxodd.dane.test.",
          "mxodd IN A 127.0.0.1",
          ...absurd.map((r) => `_${port}._tcp.mxodd IN TLSA ${r}`),
          "tan IN MX 10 mxtan.dane.test.",
          "mxtan IN A 127.0.0.1",
          `_${port}._tcp.mxtan IN TLSA 2 0 1 ${tlsaData(ca.cert, 0, 1)}`,
        ],
      },
    });
    forwarder = await startDnsmasq({ zones: ["probe.test"], extra: [`--server=127.0.0.1#${ub.port}`] });
    const config = (dns: string) => `
[dns]
servers = ["${dns}"]
[relay]
networks = ["127.0.0.0/8"]
mx_port = ${port}
dane = "on"
mta_sts = "off"
[queue]
retry_intervals = ["1h"]
`;
    validating = await startServer({ config: config(ub.server) });
    plain = await startServer({ config: config(forwarder.server) });
  }, 90_000);

  afterAll(async () => {
    await validating?.dispose();
    await plain?.dispose();
    await forwarder?.stop();
    await ub?.stop();
    await pf?.stop();
    ca?.remove();
    other?.remove();
  });

  peerTest(PEERS, "a matching DANE-EE TLSA record: delivered to Postfix over TLS", async () => {
    await relay(validating!, "bob@dane.test", "dane-match");
    await waitFor(() => pf!.delivered("dane.test", "bob").length === 1, 20_000);
    expect(pf!.log()).toMatch(/TLS connection established from [^\n]*127\.0\.0\.1/);
    await waitFor(() => recipient(validating!, "bob@dane.test")?.state === "delivered" || recipient(validating!, "bob@dane.test") === undefined, 10_000);
  }, 40_000);

  peerTest(PEERS, "a mismatching TLSA record: deferred with 4.7.5 naming DANE, nothing delivered", async () => {
    await relay(validating!, "bob@bad.dane.test", "dane-mismatch");
    await waitFor(() => recipient(validating!, "bob@bad.dane.test")?.state === "deferred", 20_000);
    const r = recipient(validating!, "bob@bad.dane.test")!;
    expect(r.last_reply).toMatch(/^4\d\d 4\.7\.5 /);
    expect(r.last_reply).toContain("DANE");
    expect(r.last_reply).toContain("no TLSA record matches");
    expect(pf!.delivered("bad.dane.test", "bob")).toEqual([]);
  }, 40_000);

  peerTest(PEERS, "DANE-TA: the CA of the chain Postfix sends matches, the MX name is in the certificate: delivered", async () => {
    await relay(validating!, "bob@ta.dane.test", "dane-ta");
    await waitFor(() => pf!.delivered("ta.dane.test", "bob").length === 1, 20_000);
  }, 40_000);

  peerTest(PEERS, "DANE-TA with an MX name the certificate does not carry: deferred with 4.7.5", async () => {
    await relay(validating!, "bob@tan.dane.test", "dane-ta-name");
    await waitFor(() => recipient(validating!, "bob@tan.dane.test")?.state === "deferred", 20_000);
    expect(recipient(validating!, "bob@tan.dane.test")!.last_reply).toMatch(/^4\d\d 4\.7\.5 .*not for mxtan\.dane\.test.*DANE/);
    expect(pf!.delivered("tan.dane.test", "bob")).toEqual([]);
  }, 40_000);

  peerTest(PEERS, "absurd TLSA records are unusable: TLS is still required (RFC 7672 §2.2), the message delivered over TLS", async () => {
    const before = (pf!.log().match(/TLS connection established from/g) ?? []).length;
    await relay(validating!, "bob@odd.dane.test", "dane-absurd");
    await waitFor(() => pf!.delivered("odd.dane.test", "bob").length === 1, 20_000);
    expect((pf!.log().match(/TLS connection established from/g) ?? []).length).toBeGreaterThan(before);
  }, 40_000);

  peerTest(PEERS, "the same zone through a non-validating resolver (no AD): opportunistic TLS, delivered", async () => {
    await relay(plain!, "bob@bad.dane.test", "dane-no-ad");
    await waitFor(() => pf!.delivered("bad.dane.test", "bob").length === 1, 20_000);
  }, 40_000);

  peerTest(PEERS, "TLS-Required: No (RFC 8689 §5): the mismatching TLSA is ignored for that message, which is delivered", async () => {
    await relay(validating!, "bob@bad.dane.test", "dane-tls-required-no", "TLS-Required: No\r\n");
    await waitFor(() => pf!.delivered("bad.dane.test", "bob").length === 2, 20_000);
    const all = pf!.delivered("bad.dane.test", "bob").map((f) => readFileSync(f, "utf8"));
    expect(all.some((m) => m.includes("Subject: dane-tls-required-no"))).toBe(true);
    // The earlier message without the field is still deferred, never delivered.
    expect(all.some((m) => m.includes("Subject: dane-mismatch"))).toBe(false);
  }, 40_000);
});
