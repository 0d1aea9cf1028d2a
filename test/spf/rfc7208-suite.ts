/**
 * The RFC 7208 test suite (openspf.org release 2014.04, as kept in pyspf's test/rfc7208-tests.yml) run through
 * checkSpf with our Resolver, each scenario's zonedata served by a real DNS server on loopback (zone-server.ts).
 * Run by hand; the yml is not ours to commit:
 *   npx bun test/spf/rfc7208-suite.ts PATH/rfc7208-tests.yml [TEST-NAME-SUBSTRING]
 * Prints each failure (expected alternatives, what we said, the reason) and a final "N/M passed".
 *
 * How the suite's zonedata becomes DNS (as its driver, pyspf's testspf.py, reads it): "SPF" records are served as
 * TXT unless the name has TXT records of its own (type 99 is gone in RFC 7208, we never ask for it); a value
 * "NONE" is left out; "TIMEOUT" is silence (see zone-server.ts).
 */
import { Resolver } from "../../src/dns/index.ts";
import { checkSpf } from "../../src/checks/spf.ts";
import { startZoneServer, type Zone, type ZoneRecord } from "./zone-server.ts";

interface SuiteTest {
  description?: string;
  spec?: string | string[];
  helo: string;
  host: string;
  mailfrom: string;
  result: string | string[];
  explanation?: string;
}

interface Scenario {
  description: string;
  tests: Record<string, SuiteTest>;
  zonedata?: Record<string, Array<Record<string, unknown> | "TIMEOUT">>;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : [String(v)]);

function zoneOf(data: Scenario["zonedata"]): Zone {
  const zone: Zone = new Map();
  for (const [owner, rrs] of Object.entries(data ?? {})) {
    const out: ZoneRecord[] = [];
    const hasTxt = rrs.some((r) => r !== "TIMEOUT" && "TXT" in r);
    for (const r of rrs) {
      if (r === "TIMEOUT") {
        out.push("TIMEOUT");
        continue;
      }
      for (const [type, v] of Object.entries(r)) {
        if (v === "NONE" || (Array.isArray(v) && v.length === 1 && v[0] === "NONE")) continue;
        if (v === "TIMEOUT") {
          if (type !== "SPF" || !hasTxt) out.push({ type: type === "SPF" ? "TXT" : (type as "A"), data: "TIMEOUT" });
          continue;
        }
        switch (type) {
          case "SPF":
            if (!hasTxt) out.push({ type: "TXT", data: strings(v) });
            break;
          case "TXT":
            out.push({ type: "TXT", data: strings(v) });
            break;
          case "MX": {
            const [preference, exchange] = v as [number, string];
            out.push({ type: "MX", data: { preference, exchange } });
            break;
          }
          case "A":
          case "AAAA":
          case "PTR":
          case "CNAME":
            out.push({ type, data: String(v) });
            break;
          default:
            throw new Error(`zonedata ${owner}: record type ${type} not handled`);
        }
      }
    }
    zone.set(owner.toLowerCase(), out);
  }
  return zone;
}

const [file, only] = process.argv.slice(2);
if (file === undefined) {
  console.error("usage: npx bun test/spf/rfc7208-suite.ts PATH/rfc7208-tests.yml [TEST-NAME-SUBSTRING]");
  process.exit(2);
}
const scenarios = Bun.YAML.parse(await Bun.file(file).text()) as Scenario[];
const server = await startZoneServer();
let total = 0;
let passed = 0;
const started = performance.now();
for (const sc of scenarios) {
  server.zone = zoneOf(sc.zonedata);
  for (const [name, t] of Object.entries(sc.tests)) {
    if (only !== undefined && !name.includes(only)) continue;
    total++;
    // A fresh cache per test: the suite's answers differ between scenarios under the same names.
    const resolver = new Resolver({ servers: [server.server], timeoutMs: 300, attempts: 1 });
    const t0 = performance.now();
    const out = await checkSpf({ ip: String(t.host), helo: String(t.helo), sender: String(t.mailfrom ?? "") }, resolver, {
      receiver: "receiver.example.net",
    });
    const ms = performance.now() - t0;
    const want = strings(t.result);
    const okResult = want.includes(out.result);
    // The suite's explanation is the expanded exp= text; only checked when both sides have one.
    const okExp = t.explanation === undefined || out.result !== "fail" || out.explanation === undefined || out.explanation === t.explanation;
    if (okResult && okExp) {
      passed++;
      continue;
    }
    const exp = okExp ? "" : ` explanation ${JSON.stringify(out.explanation)} (want ${JSON.stringify(t.explanation)})`;
    console.log(
      `FAIL ${name} [${sc.description}; spec ${strings(t.spec ?? "?").join(",")}]: want ${want.join("|")}, got ${out.result}` +
        ` (${out.reason ?? ""})${exp}; ${ms.toFixed(0)} ms\n     ${t.description ?? ""}`.trimEnd(),
    );
  }
}
await server.stop();
console.log(`${passed}/${total} passed (${((performance.now() - started) / 1000).toFixed(1)} s)`);
