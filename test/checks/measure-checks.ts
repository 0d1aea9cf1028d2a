/**
 * CPU time per message of each inbound check with every DNS answer in the resolver's cache: SPF (one include),
 * DKIM + ARC verification of a 1 KiB message signed twice (RSA-2048 and ed25519), DMARC, and the
 * Authentication-Results field. Run by hand:
 *   npx bun test/checks/measure-checks.ts [ITERATIONS]
 * A measurement, not a test: the figures go into native-bench/RESULTS.md.
 */
import { generateKeyPairSync } from "node:crypto";
import { dkimSign } from "mailauth/lib/dkim/sign";
import { authenticationResults, checkDmarc, checkSpf, MessageVerifier } from "../../src/checks/index.ts";
import { Resolver } from "../../src/dns/index.ts";
import { startZoneServer, type ZoneRecord } from "../spf/zone-server.ts";
import { mainThreadCpu } from "./measure-common.ts";

const D = "sender.test";
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ed = generateKeyPairSync("ed25519");
const der = (k: typeof rsa.publicKey): Buffer => k.export({ format: "der", type: "spki" });
const edRaw = der(ed.publicKey).subarray(-32).toString("base64");
const txt = (...s: string[]): ZoneRecord[] => [{ type: "TXT", data: s }];
const server = await startZoneServer(
  new Map([
    [D, txt(`v=spf1 include:_spf.${D} -all`)],
    [`_spf.${D}`, txt("v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 ~all")],
    [`rsa._domainkey.${D}`, txt("v=DKIM1; k=rsa; p=" + der(rsa.publicKey).toString("base64"))],
    [`ed._domainkey.${D}`, txt(`v=DKIM1; k=ed25519; p=${edRaw}`)],
    [`_dmarc.${D}`, txt("v=DMARC1; p=reject")],
  ]),
);
const dns = new Resolver({ servers: [server.server], timeoutMs: 1000, attempts: 1 });
const body = "x".repeat(70) + "\r\n";
const unsigned = Buffer.from(
  `From: <a@${D}>\r\nTo: <b@example.test>\r\nSubject: measure\r\nDate: Thu, 03 Dec 2026 00:00:00 +0000\r\nMessage-ID: <1@${D}>\r\n\r\n` + body.repeat(10),
);
const signed = await dkimSign(unsigned, {
  canonicalization: "relaxed/relaxed",
  signatureData: [
    { signingDomain: D, selector: "rsa", privateKey: rsa.privateKey.export({ format: "pem", type: "pkcs8" }) as string },
    { signingDomain: D, selector: "ed", privateKey: ed.privateKey.export({ format: "pem", type: "pkcs8" }) as string },
  ],
} as never);
const message = Buffer.concat([Buffer.from(signed.signatures), unsigned]);
const n = Number(process.argv[2] ?? 3000);

async function measure(label: string, fn: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 200; i++) await fn();
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpu();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const main1 = mainThreadCpu();
  const main = main0 !== null && main1 !== null ? `, ${((main1 - main0) / n).toFixed(0)} µs on the main thread` : "";
  console.log(`${label}: ${((cpu.user + cpu.system) / n).toFixed(0)} µs CPU${main}, ${((wall * 1000) / n).toFixed(0)} µs wall`);
}

const spf = await checkSpf({ ip: "127.0.0.1", helo: "client.test", sender: `a@${D}` }, dns);
const verify = async () => {
  const v = new MessageVerifier({ dns, dkim: true, arc: true });
  v.write(message);
  return v.end();
};
const verified = await verify();
if (verified.dkim.map((d) => d.result).join() !== "pass,pass") throw new Error(JSON.stringify(verified.dkim));
console.log(`${message.length}-byte message, ${n} iterations, answers cached`);
await measure("spf (one include)", () => checkSpf({ ip: "127.0.0.1", helo: "client.test", sender: `a@${D}` }, dns));
await measure("dkim + arc verify (rsa-2048 + ed25519)", verify);
const rsaOnly = await dkimSign(unsigned, {
  canonicalization: "relaxed/relaxed",
  signatureData: [{ signingDomain: D, selector: "rsa", privateKey: rsa.privateKey.export({ format: "pem", type: "pkcs8" }) as string }],
} as never);
const rsaMessage = Buffer.concat([Buffer.from(rsaOnly.signatures), unsigned]);
await measure("dkim + arc verify (rsa-2048)", async () => {
  const v = new MessageVerifier({ dns, dkim: true, arc: true });
  v.write(rsaMessage);
  return v.end();
});
await measure("dmarc", () => checkDmarc({ fromDomains: verified.fromDomains, spf, dkim: verified.dkim, arc: verified.arc, dns }));
const dmarc = await checkDmarc({ fromDomains: verified.fromDomains, spf, dkim: verified.dkim, arc: verified.arc, dns });
await measure("authentication-results field", async () => authenticationResults("mx.test", { spf, dkim: verified.dkim, arc: verified.arc, dmarc }));
await server.stop();
