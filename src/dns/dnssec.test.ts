/**
 * The AD bit through a real validating resolver: unbound validates a zone signed at test time (see
 * test/helpers/unbound.ts). DANE (RFC 7672 §2.2) trusts TLSA and address answers only when they carry AD; this
 * is where that bit is shown to reach our results, and to be absent where nothing was validated.
 */
import { afterAll, beforeAll, describe, expect } from "vitest";
import { startDnsmasq, type Dnsmasq } from "../../test/helpers/dnsmasq.ts";
import { havePeer, peerTest, type Peer } from "../../test/helpers/peers.ts";
import { startValidatingUnbound, type Unbound } from "../../test/helpers/unbound.ts";
import { Resolver } from "./index.ts";

const PEERS: Peer[] = ["unbound", "ldns-keygen", "ldns-signzone"];
const TLSA_HEX = "0123456789abcdef".repeat(4);
const SIGNED = [
  "@ IN MX 10 mx.signed.test.",
  "mx IN A 127.0.0.5",
  "mx IN AAAA ::5",
  `_25._tcp.mx IN TLSA 3 1 1 ${TLSA_HEX}`,
  "bogus IN A 127.0.0.7",
  `_25._tcp.bogus IN TLSA 3 1 1 ${TLSA_HEX}`,
];

describe("DNSSEC: the AD bit through a validating unbound", () => {
  let ub: Unbound | null = null;
  let forwarder: Dnsmasq | null = null;
  beforeAll(async () => {
    if (!PEERS.every(havePeer)) return;
    ub = await startValidatingUnbound({
      signed: { "signed.test": SIGNED },
      unsigned: { "plain.test": ["mx IN A 127.0.0.6", `_25._tcp.mx IN TLSA 3 1 1 ${TLSA_HEX}`] },
      // After signing, bogus.signed.test's A and TLSA data change under their RRSIGs (RFC 4035 §4.3: bogus).
      tamper: (text) =>
        text
          .replace(/^(bogus\.signed\.test\.\s+\d+\s+IN\s+A\s+)127\.0\.0\.7$/m, "$1127.0.0.66")
          .replace(/^(_25\._tcp\.bogus\.signed\.test\.\s+\d+\s+IN\s+TLSA\s+3 1 1 )0/m, "$1f"),
    });
    if (havePeer("dnsmasq")) forwarder = await startDnsmasq({ zones: ["probe.test"], extra: [`--server=127.0.0.1#${ub.port}`] });
  });
  afterAll(async () => {
    await forwarder?.stop();
    await ub?.stop();
  });
  const resolver = (server: string) => new Resolver({ servers: [server], timeoutMs: 2000 });

  peerTest(PEERS, "answers of the signed zone carry AD=1: TLSA, A, AAAA, MX and a validated NXDOMAIN", async () => {
    const r = resolver(ub!.server);
    const tlsa = await r.lookup("_25._tcp.mx.signed.test", "TLSA");
    expect(tlsa).toMatchObject({ status: "ok", ad: true });
    expect(tlsa.records.map((t) => [t.usage, t.selector, t.matchingType, Buffer.from(t.data).toString("hex")])).toEqual([[3, 1, 1, TLSA_HEX]]);
    expect(await r.lookup("mx.signed.test", "A")).toMatchObject({ status: "ok", records: ["127.0.0.5"], ad: true });
    expect(await r.addresses("mx.signed.test")).toMatchObject({ status: "ok", records: ["127.0.0.5", "::5"], ad: true });
    expect(await r.lookup("signed.test", "MX")).toMatchObject({ status: "ok", records: [{ exchange: "mx.signed.test", preference: 10 }], ad: true });
    expect(await r.lookup("nothere.signed.test", "TLSA")).toMatchObject({ status: "nxdomain", ad: true });
    expect(await r.lookup("_25._tcp.signed.test", "TLSA")).toMatchObject({ status: "nxdomain", ad: true });
  });

  peerTest(PEERS, "an unsigned zone through the same validator has AD=0", async () => {
    const r = resolver(ub!.server);
    expect(await r.lookup("mx.plain.test", "A")).toMatchObject({ status: "ok", records: ["127.0.0.6"], ad: false });
    expect(await r.lookup("_25._tcp.mx.plain.test", "TLSA")).toMatchObject({ status: "ok", ad: false });
  });

  peerTest(PEERS, "records altered after signing are bogus: the validator's SERVFAIL is servfail, never an answer", async () => {
    const r = resolver(ub!.server);
    expect(await r.lookup("bogus.signed.test", "A")).toMatchObject({ status: "servfail", records: [], ad: false });
    expect(await r.lookup("_25._tcp.bogus.signed.test", "TLSA")).toMatchObject({ status: "servfail", records: [] });
  });

  peerTest([...PEERS, "dnsmasq"], "the signed zone through dnsmasq (a forwarder that clears AD) has AD=0", async () => {
    const r = resolver(forwarder!.server);
    expect(await r.lookup("mx.signed.test", "A")).toMatchObject({ status: "ok", records: ["127.0.0.5"], ad: false });
    expect(await r.lookup("_25._tcp.mx.signed.test", "TLSA")).toMatchObject({ status: "ok", ad: false });
  });
});
