/**
 * What the measurement scripts of test/checks share (measure-stage.ts, measure-session.ts, measure-checks.ts): the
 * checks bench's sender (native-bench/checks.ts: SPF through an include, a DKIM key, DMARC p=reject, served by a
 * zone server on loopback), its 1 KiB message signed as the bench signs it, the checks stage with every check on,
 * and the CPU time of the main thread.
 */
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { dkimSign } from "mailauth/lib/dkim/sign";
import { SpfMemo } from "../../src/checks/index.ts";
import type { DnsLookup } from "../../src/dns/index.ts";
import { authChecksStage } from "../../src/inbound/index.ts";
import type { Stage } from "../../src/mail/index.ts";
import { startZoneServer, type ZoneRecord } from "../spf/zone-server.ts";

export const SENDER_DOMAIN = "sender.bench.test";

/**
 * CPU time of the main (event-loop) thread alone, in µs, from /proc (Linux; clock ticks of 10 ms, so a run of a
 * few thousand iterations is precise to a few per cent); null elsewhere. Process CPU also counts the runtime's
 * thread pool, where the asynchronous crypto.verify runs.
 */
export function mainThreadCpu(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return null;
  }
}

export interface BenchSender {
  /** The zone server's address for a Resolver. */
  readonly dnsServer: string;
  /** The signed message (header section and body, CRLF, no end-of-data marker). */
  readonly message: Buffer;
  stop(): Promise<void>;
}

/** The bench's sender domain and message, signed with one signature per algorithm of `algos` ("rsa", "ed25519"). */
export async function benchSender(algos: ReadonlyArray<string> = ["rsa"], to = "x@bench.localhost"): Promise<BenchSender> {
  const D = SENDER_DOMAIN;
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ed = generateKeyPairSync("ed25519");
  const der = (k: typeof rsa.publicKey): Buffer => k.export({ format: "der", type: "spki" });
  const txt = (...s: string[]): ZoneRecord[] => [{ type: "TXT", data: s }];
  const rsaP = der(rsa.publicKey).toString("base64");
  const server = await startZoneServer(
    new Map([
      [D, txt(`v=spf1 include:_spf.${D} -all`)],
      [`_spf.${D}`, txt("v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 ~all")],
      // The key in two strings, as the bench publishes it.
      [`rsa._domainkey.${D}`, txt(`v=DKIM1; k=rsa; p=${rsaP.slice(0, 250)}`, rsaP.slice(250))],
      [`ed._domainkey.${D}`, txt(`v=DKIM1; k=ed25519; p=${der(ed.publicKey).subarray(-32).toString("base64")}`)],
      [`_dmarc.${D}`, txt(`v=DMARC1; p=reject; rua=mailto:dmarc@${D}`)],
    ]),
  );
  const header =
    `From: Bench <bench@${D}>\r\nTo: <${to}>\r\nSubject: bench message\r\nDate: Thu, 03 Dec 2026 00:00:00 +0000\r\n` +
    `Message-ID: <1.bench@${D}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`;
  const unsigned = Buffer.from(header + ("x".repeat(70) + "\r\n").repeat(10));
  const signed = await dkimSign(unsigned, {
    canonicalization: "relaxed/relaxed",
    headerList: ["from", "subject", "date", "mime-version", "content-type"],
    signatureData: algos.map((a) => ({
      signingDomain: D,
      selector: a === "rsa" ? "rsa" : "ed",
      privateKey: (a === "rsa" ? rsa : ed).privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    })),
  } as never);
  return { dnsServer: server.server, message: Buffer.concat([Buffer.from(signed.signatures), unsigned]), stop: () => server.stop() };
}

/** The inbound checks stage with SPF, DKIM, ARC and DMARC (enforce) on for every session, as the bench runs it. */
export function allChecksStage(dns: DnsLookup, authservId: string): Stage {
  const memo = new SpfMemo();
  return authChecksStage({
    switches: () => ({ spf: true, spfReject: false, dkim: true, arc: true, dmarc: "enforce" }),
    checked: () => true,
    authservId: () => authservId,
    dns: () => dns,
    spf: (q, d, receiver) => memo.peek(q) ?? memo.check(q, d, { receiver }),
    sealer: () => null,
    now: Date.now,
    counted: () => {},
  });
}
