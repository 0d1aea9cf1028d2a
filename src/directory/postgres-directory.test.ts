/**
 * The PostgreSQL directory against a real PostgreSQL 15 started for this file (test/helpers/postgres.ts):
 * migrate is idempotent, a change is seen through NOTIFY well within 2 s, a change whose notification is lost
 * (the LISTEN connection killed) is still seen through the version poll, and an outage makes the view
 * unavailable within the staleness bound, then available again with the change made meanwhile.
 */
import postgres from "postgres";
import { afterAll, beforeAll, expect } from "vitest";
import { peerTest } from "../../test/helpers/peers.ts";
import { startPostgres, type Postgres } from "../../test/helpers/postgres.ts";
import { waitFor } from "../../test/helpers/wait.ts";
import { Authenticator } from "../auth/index.ts";
import { deleteUser, listUsers, upsertUser } from "./admin.ts";
import { SharedAuthFailures } from "./auth-failures.ts";
import { connect, PostgresDirectory, stripScheme } from "./postgres-directory.ts";
import { migrate, SCHEMA_VERSION } from "./schema.ts";
import type { DirectoryLog } from "./types.ts";

let pg: Postgres | null = null;
let sql: postgres.Sql | null = null;
const dirs: PostgresDirectory[] = [];
const events: string[] = [];
const log: DirectoryLog = { info: (e) => events.push(e), warn: (e) => events.push(e) };

beforeAll(async () => {
  try {
    pg = await startPostgres();
  } catch (e) {
    if (String(e).includes("not found")) return; // the peer tests below skip or fail with the install hint
    throw e;
  }
  sql = connect(pg.url);
}, 60_000);

afterAll(async () => {
  for (const d of dirs) await d.close();
  await sql?.end({ timeout: 1 });
  pg?.dispose();
}, 60_000);

async function open(): Promise<PostgresDirectory> {
  const d = await PostgresDirectory.open({ url: pg!.url, log, pollMs: 200, staleMs: 1500 });
  dirs.push(d);
  return d;
}

/** ms until `cond` holds (polled every 10 ms), or throws after `limitMs`. */
async function within(limitMs: number, cond: () => boolean): Promise<number> {
  const t0 = Date.now();
  await waitFor(cond, limitMs, 10);
  return Date.now() - t0;
}

peerTest("initdb", "directory migrate creates the tables and triggers; a second run changes nothing", async () => {
  expect(await migrate(sql!)).toEqual({ from: 0, to: SCHEMA_VERSION });
  expect(await migrate(sql!)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
  const tables = await sql!<Array<{ t: string }>>`SELECT tablename AS t FROM pg_tables WHERE tablename LIKE 'ringmta_%' ORDER BY 1`;
  expect(tables.map((r) => r.t)).toEqual([
    "ringmta_aliases",
    "ringmta_auth_blocks",
    "ringmta_auth_failures",
    "ringmta_directory_state",
    "ringmta_domains",
    "ringmta_greylist",
    "ringmta_rate_limits",
    "ringmta_users",
  ]);
  const triggers = await sql!<Array<{ t: string }>>`SELECT tgname AS t FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`;
  expect(triggers.map((r) => r.t)).toEqual(["ringmta_aliases_changed", "ringmta_domains_changed", "ringmta_users_changed"]);
});

peerTest("initdb", "load, then changes by SQL and by the user commands are live through NOTIFY in well under 2 s", async () => {
  await sql!`INSERT INTO ringmta_domains (domain) VALUES ('Example.Test')`;
  await upsertUser(sql!, "Alice@example.test", "$argon2id$v=19$m=65536,t=2,p=1$salt$hash");
  await sql!`INSERT INTO ringmta_aliases (address, target) VALUES ('team@example.test', 'alice@example.test'), ('team@example.test', 'bob@remote.test')`;
  const d = await open();
  const s = d.snapshot()!;
  expect([...s.domains]).toEqual(["example.test"]);
  expect(s.users.get("alice@example.test")).toEqual({ address: "Alice@example.test", hash: "$argon2id$v=19$m=65536,t=2,p=1$salt$hash" });
  expect(s.aliases.get("team@example.test")).toEqual(["alice@example.test", "bob@remote.test"]);

  // user add of an existing address in another case replaces it (one row per address, case-insensitively).
  await upsertUser(sql!, "ALICE@example.test", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$salt$other");
  expect(await listUsers(sql!)).toEqual(["ALICE@example.test"]);
  const ms = await within(2000, () => d.snapshot()?.users.get("alice@example.test")?.hash.endsWith("other") === true);
  expect(ms).toBeLessThan(2000);
  // Dovecot's scheme prefix is stripped: ringmta verifies the PHC string.
  expect(d.snapshot()!.users.get("alice@example.test")!.hash).toBe("$argon2id$v=19$m=65536,t=2,p=1$salt$other");

  await sql!`INSERT INTO ringmta_domains (domain) VALUES ('new.test')`;
  await within(2000, () => d.snapshot()?.domains.has("new.test") === true);
  expect(await deleteUser(sql!, "alice@EXAMPLE.test")).toBe(true);
  expect(await deleteUser(sql!, "alice@example.test")).toBe(false);
  await within(2000, () => d.snapshot()?.users.size === 0);
  await sql!`TRUNCATE ringmta_aliases`;
  await within(2000, () => d.snapshot()?.aliases.size === 0);
});

peerTest("initdb", "a change whose NOTIFY is lost (LISTEN connection killed) is still seen through the version poll", async () => {
  const d = await open();
  // Kill every LISTEN connection, then change at once: the notification has no listener.
  const killed = await sql!`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`;
  expect(killed.length).toBeGreaterThan(0);
  await sql!`INSERT INTO ringmta_domains (domain) VALUES ('missed.test')`;
  const ms = await within(2000, () => d.snapshot()?.domains.has("missed.test") === true);
  expect(ms).toBeLessThan(2000);
});

peerTest(
  "initdb",
  "database down: the view goes unavailable within the staleness bound; back up: available again, with the changes",
  async () => {
    const d = await open();
    expect(d.snapshot()).not.toBeNull();
    pg!.stop();
    const down = await within(5000, () => d.snapshot() === null);
    // staleMs 1500 + one poll interval + a failing connect.
    expect(down).toBeLessThan(4000);
    expect(events).toContain("directory.unreachable");
    pg!.start();
    await sql!`INSERT INTO ringmta_domains (domain) VALUES ('after.test')`;
    const up = await within(10_000, () => d.snapshot()?.domains.has("after.test") === true);
    expect(up).toBeLessThan(5000);
    await within(5000, () => events.includes("directory.reconnected"));
  },
  30_000,
);

peerTest(
  "initdb",
  "database hung (SIGSTOP): the poll times out and the view goes unavailable within the bound; SIGCONT: back",
  async () => {
    const d = await open();
    expect(d.snapshot()).not.toBeNull();
    const seen = events.length;
    pg!.freeze(true);
    try {
      const down = await within(8000, () => d.snapshot() === null);
      expect(down).toBeLessThan(5000);
      // The poll's own timeout (1.5 s), not a connection error: nothing answers at all.
      await within(8000, () => events.slice(seen).includes("directory.unreachable"));
    } finally {
      pg!.freeze(false);
    }
    await sql!`INSERT INTO ringmta_domains (domain) VALUES ('thawed.test')`;
    await within(10_000, () => d.snapshot()?.domains.has("thawed.test") === true);
    // Logged at the end of the check that reloaded (after its LISTEN): a moment after the view has the change.
    await within(5000, () => events.slice(seen).includes("directory.reconnected"));
  },
  30_000,
);

peerTest("initdb", "AUTH brute-force records are shared: failures spread over two nodes delay, then block, on both", async () => {
  const limits = { delayAfter: 2, blockAfter: 4, blockMs: 600_000 };
  const node = () => {
    const shared = new SharedAuthFailures({ url: pg!.url, log, threshold: () => 2, pollMs: 3_600_000 });
    const auth = new Authenticator({ snapshot: () => null }, { verify: async () => false }, limits, Date.now, "", shared);
    return { shared, auth };
  };
  const a = node();
  const b = node();
  const ip = "192.0.2.7";
  const settled = async (n: { shared: SharedAuthFailures }, want: () => boolean): Promise<void> => {
    // Writes go out in the background: fetch until they are visible.
    await waitFor(async () => {
      await n.shared.refresh();
      return want();
    }, 5000, 20);
  };
  try {
    a.auth.recordFailure(ip);
    a.auth.recordFailure(ip);
    expect(a.auth.ipStatus(ip)).toBe("delay");
    await settled(b, () => b.auth.ipStatus(ip) === "delay"); // no failure on b itself
    b.auth.recordFailure(ip);
    await settled(b, () => b.shared.get(ip)?.failures === 3);
    expect(b.auth.ipStatus(ip)).toBe("delay");
    b.auth.recordFailure(ip); // the fourth over the fleet: b blocks, and tells a
    expect(b.auth.ipStatus(ip)).toBe("blocked");
    await settled(a, () => a.auth.ipStatus(ip) === "blocked");
    expect(a.auth.ipStatus("192.0.2.8")).toBe("ok");
    expect(b.auth.ipStatus("192.0.2.8")).toBe("ok");
    // The block replaced the counted failures.
    const [row] = await sql!<Array<{ n: number }>>`SELECT count(*)::int AS n FROM ringmta_auth_failures WHERE ip = ${ip}`;
    expect(row!.n).toBe(0);
  } finally {
    await a.shared.close();
    await b.shared.close();
  }
});

peerTest("initdb", "stripScheme: {ARGON2ID}$argon2id$… → $argon2id$…; a bare PHC string is kept", () => {
  expect(stripScheme("{ARGON2ID}$argon2id$v=19$x")).toBe("$argon2id$v=19$x");
  expect(stripScheme("$argon2id$v=19$x")).toBe("$argon2id$v=19$x");
});
