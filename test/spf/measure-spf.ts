/**
 * CPU time of one checkSpf on a typical record (ip4 terms and one include) with every answer in the resolver's
 * cache: what the SPF stage costs per MAIL FROM once the sender's domain is known. Run by hand:
 *   npx bun test/spf/measure-spf.ts [ITERATIONS]
 * A measurement, not a test: the figure goes into RESULTS.md / the report.
 */
import { checkSpf } from "../../src/checks/index.ts";
import { Resolver } from "../../src/dns/index.ts";
import { startZoneServer, type ZoneRecord } from "./zone-server.ts";

const rec = (r: string): ZoneRecord[] => [{ type: "TXT", data: [r] }];
const server = await startZoneServer(
  new Map([
    ["example.test", rec("v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 include:_spf.provider.test ~all")],
    ["_spf.provider.test", rec("v=spf1 ip4:203.0.113.0/24 ip6:2001:db8::/32 -all")],
  ]),
);
const resolver = new Resolver({ servers: [server.server], timeoutMs: 1000, attempts: 1 });
const n = Number(process.argv[2] ?? 5000);
const cases = [
  { label: "pass through the include", ip: "203.0.113.9", want: "pass" },
  { label: "softfail (all terms tried)", ip: "192.0.3.1", want: "softfail" },
];
for (const c of cases) {
  const q = { ip: c.ip, helo: "mail.example.test", sender: "someone@example.test" };
  for (let i = 0; i < 200; i++) await checkSpf(q, resolver); // warm: answers cached, code compiled
  const udpBefore = server.counts.udp;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const out = await checkSpf(q, resolver);
    if (out.result !== c.want) throw new Error(`${c.label}: ${out.result}`);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const us = (cpu.user + cpu.system) / n;
  console.log(`${c.label}: ${us.toFixed(1)} µs CPU, ${((wall * 1000) / n).toFixed(1)} µs wall per check (${n} checks, ${server.counts.udp - udpBefore} DNS queries sent)`);
}
await server.stop();
