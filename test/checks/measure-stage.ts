/**
 * Event-loop CPU per message of the inbound checks as the MX session runs them (inbound/auth-checks.ts: SPF at
 * MAIL, remembered; DKIM verification as the body streams; DMARC; the Authentication-Results field), over the
 * message the checks bench sends (native-bench/checks.ts: 1 KiB, one RSA-2048 signature, DMARC p=reject), with
 * every DNS answer in the resolver's cache; one message at a time and 20 at once. The figure to shrink when the
 * bench's checked server falls behind (its event loop is what the sessions wait on). Run by hand:
 *   npx bun test/checks/measure-stage.ts [ITERATIONS] [--sign rsa|rsa,ed25519]
 * A measurement, not a test.
 */
import { Resolver } from "../../src/dns/index.ts";
import type { MessageObserver, SessionView } from "../../src/mail/index.ts";
import { allChecksStage, benchSender, mainThreadCpu, SENDER_DOMAIN } from "./measure-common.ts";

const args = process.argv.slice(2);
const signIdx = args.indexOf("--sign");
const algos = signIdx >= 0 ? args[signIdx + 1]!.split(",") : ["rsa"];
const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 20000);

const sender = await benchSender(algos);
const { message } = sender;
const dns = new Resolver({ servers: [sender.dnsServer], timeoutMs: 1000, attempts: 1 });
const stage = allChecksStage(dns, "mx.bench.localhost");
const view: SessionView = { clientAddress: "127.0.0.1", listener: "mx", helo: "client.bench", tls: undefined, authUser: undefined, bytesReceived: 0 };
const session = stage.open(view)!;
const tx = {
  sender: `bench@${SENDER_DOMAIN}`,
  recipients: [{ address: "x@bench.localhost", localPart: "x", domain: "bench.localhost", targets: ["x@bench.localhost"] }],
  smtputf8: false,
};
let last = "";

async function one(): Promise<void> {
  await session.mail!(tx.sender);
  const obs = session.message!(tx) as MessageObserver;
  obs.write(message);
  const v = await obs.end();
  if (v === null || v.kind !== "accept") throw new Error(JSON.stringify(v));
  last = v.prepend ?? "";
}

for (let i = 0; i < 2000; i++) await one();
if (!/dkim=pass/.test(last) || !/dmarc=pass/.test(last) || !/spf=pass/.test(last)) throw new Error(last);
if (mainThreadCpu() === null) throw new Error("this measurement reads /proc (Linux)");
for (const par of [1, 20]) {
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpu()!;
  const t0 = performance.now();
  for (let i = 0; i < n / par; i++) await Promise.all(Array.from({ length: par }, one));
  const cpu = process.cpuUsage(c0);
  const main = (mainThreadCpu()! - m0) / n;
  console.log(
    `${message.length}-byte message, ${algos.join(" + ")}, ${par} at a time: ${main.toFixed(1)} µs event loop, ` +
      `${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU, ${(((performance.now() - t0) * 1000) / n).toFixed(1)} µs wall per message`,
  );
}
await sender.stop();
