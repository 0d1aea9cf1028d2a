/**
 * Runs every test/dialogs/*.dialog transcript (format: driver.ts), one test per file and per way of running it:
 * in-process on the session tier with each C group as one chunk, again byte by byte, and against the real server
 * for the transcripts marked "# run: both" or "# run: server". The in-process runs need no process and no socket,
 * so the whole protocol corpus costs milliseconds; the real-server runs keep the process itself proven.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { startServer, type Srv } from "../helpers/index.ts";
import { parseDialog, runDialog, serverConn, tierConn, tierOptions } from "./driver.ts";

const DIR = fileURLToPath(new URL(".", import.meta.url));

const dialogs = readdirSync(DIR)
  .filter((f) => f.endsWith(".dialog"))
  .sort()
  .map((f) => parseDialog(basename(f, ".dialog"), readFileSync(join(DIR, f), "utf8")));
const inProcess = dialogs.filter((d) => d.run !== "server");
const onServer = dialogs.filter((d) => d.run !== "tier");

// One server per distinct config override, started when its first dialog runs and shared by the rest.
const servers = new Map<string, Promise<Srv>>();
function serverFor(config: string): Promise<Srv> {
  let s = servers.get(config);
  if (!s) {
    s = startServer({ config });
    servers.set(config, s);
  }
  return s;
}

afterAll(async () => {
  await Promise.all([...servers.values()].map(async (p) => (await p.catch(() => null))?.dispose()));
});

describe("dialogs", () => {
  test("there are dialog files, and some of them run against the real server", () => {
    expect(inProcess.length).toBeGreaterThan(0);
    expect(onServer.length).toBeGreaterThan(0);
  });
  for (const d of inProcess) {
    test(d.name, async () => {
      await runDialog(d, tierConn(d));
    });
  }
});

describe("dialogs byte by byte", () => {
  for (const d of inProcess) {
    test(d.name, async () => {
      await runDialog(d, tierConn(d, "bytewise"));
    });
  }
});

describe("dialogs on the real server", () => {
  for (const d of onServer) {
    test(d.name, async () => {
      await runDialog(d, await serverConn(await serverFor(d.config), d));
    });
  }
});

describe("dialog config on the tier", () => {
  test("the keys the transcripts use map onto the tier's settings and policy", () => {
    const o = tierOptions({
      name: "t",
      listener: "submission",
      config: [
        "hostname = 'h.test'",
        "[limits]",
        "max_recipients = 7",
        "max_message_size = 1000",
        "max_hops = 3",
        "max_auth_failures = 2",
        "[local]",
        "catch_all = true",
        "domains = ['a.test']",
        "[local.aliases]",
        "'x@a.test' = ['y@a.test']",
        "[relay]",
        "networks = ['10.0.0.0/8']",
      ].join("\n"),
    });
    expect(o).toMatchObject({ listener: "submission", hostname: "h.test", maxRecipients: 7, maxMessageSize: 1000, maxHops: 3, maxAuthFailures: 2 });
    expect(o.policy).toMatchObject({ catchAll: true, domains: ["a.test"], relayNetworks: ["10.0.0.0/8"] });
    // Like the real server's deep merge: the base aliases stay beside the new one.
    expect(o.policy!.aliases).toMatchObject({ "x@a.test": ["y@a.test"], "postmaster@example.test": ["alice@example.test"] });
  });

  test("an unknown key fails loudly instead of being ignored", () => {
    expect(() => tierOptions({ name: "t", listener: "mx", config: "[defence]\npregreet_ms = 100" })).toThrow(
      /config key "defence.pregreet_ms" has no in-process equivalent/,
    );
    expect(() => tierOptions({ name: "t", listener: "mx", config: "[limits]\nmax_recipients = 0" })).toThrow(/positive integer/);
  });
});
