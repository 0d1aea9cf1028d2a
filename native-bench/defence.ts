/**
 * `bun run bench -- defence [--messages N] [--reps R]`: what the MX defences cost (issue 12). Two ringmta
 * servers, one plain and one with DNSBL on two zones (served by dnsmasq on loopback, the client not listed) and
 * rate limits on ip, sender and recipient set far above the load (so none is hit), get the same load, 1 KiB × 20
 * sessions, in alternating repetitions in one run; end to end (a message counts when it is a Maildir file). Prints
 * the medians and the ratio defended / plain (the target: at least 85%).
 */
import { connect } from "node:net";
import { alternateRuns, parseRepsArgs, type NamedPeer } from "./ab-runs.ts";
import { startRingmta } from "./peer-ringmta.ts";
import { startBenchDns } from "./dnsmasq.ts";
import { median } from "./stats.ts";

const ZONES = ["bl1.bench.test", "bl2.bench.test"];


/**
 * Proof that the defended server really asks the lists: a session from 127.0.0.2 (listed in both zones) must get
 * 554 at RCPT. Returns the RCPT reply line.
 */
async function probeListed(port: number): Promise<string> {
  const s = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
  let text = "";
  s.on("data", (b) => (text += b.toString("latin1")));
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 500 && !re.test(text); i++) await Bun.sleep(10);
  };
  await until(/^220 /m);
  s.write("EHLO probe.test\r\nMAIL FROM:<probe@client.test>\r\nRCPT TO:<probe@bench.test>\r\n");
  await until(/^(?:250 2\.1\.0.*\r\n)[\s\S]*^\d{3} .*\r\n/m);
  await until(/^[45]\d\d .*\r\n|^250 2\.1\.5/m);
  s.end("QUIT\r\n");
  const line = text.split("\r\n").find((l) => /^(554|250 2\.1\.5)/.test(l)) ?? text;
  return line;
}


export const DEFENCE_USAGE = "usage: bun run bench -- defence [--messages N (default 5000)] [--reps R (default 3)]";

export async function runDefence(argv: string[]): Promise<number> {
  const { messages, reps } = parseRepsArgs(argv, DEFENCE_USAGE);

  // dnsmasq authoritative for the two zones (every name in them: NXDOMAIN, except the listed 127.0.0.2).
  const dns = await startBenchDns(ZONES, ZONES.map((z) => `--host-record=2.0.0.127.${z},127.0.0.2`));
  const defended = `
[dns]
servers = ["${dns.server}"]

[defence]
dnsbl = ${JSON.stringify(ZONES)}

[[rate_limits]]
key = "ip"
rate = "100000000/1m"

[[rate_limits]]
key = "sender"
rate = "100000000/1m"

[[rate_limits]]
key = "recipient"
rate = "100000000/1m"
`;
  const peers: NamedPeer[] = [];
  try {
    peers.push({ name: "plain", peer: await startRingmta() });
    peers.push({ name: "defended", peer: await startRingmta({ extra: defended }) });
    const probe = await probeListed(peers[1]!.peer.port);
    if (!probe.startsWith("554 5.7.1")) throw new Error(`the defended server did not refuse a listed client: ${probe}`);
    console.error(`probe from 127.0.0.2 (listed): ${probe}`);
    const rates = await alternateRuns(peers, { messages, reps });
    const p = median(rates.plain!);
    const d = median(rates.defended!);
    console.log(`1 KiB × 20 sessions, ${messages} messages, ${reps} reps each, end to end (Maildir)`);
    console.log(`plain:    median ${p.toFixed(0)} msgs/s  (${rates.plain!.map((x) => x.toFixed(0)).join(", ")})`);
    console.log(
      `defended: median ${d.toFixed(0)} msgs/s  (${rates.defended!.map((x) => x.toFixed(0)).join(", ")})  ` +
        `[dnsbl ${ZONES.join(", ")}; rate limits ip, sender, recipient; every message accepted, so none was hit]`,
    );
    console.log(`ratio defended/plain: ${((100 * d) / p).toFixed(1)}% (target >= 85%)`);
    return d / p >= 0.85 ? 0 : 1;
  } finally {
    for (const { peer } of peers) await peer.stop();
    for (const { peer } of peers) peer.remove();
    dns.stop();
  }
}
