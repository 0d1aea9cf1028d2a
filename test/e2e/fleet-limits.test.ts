/**
 * Issue 14 item 4 / CONTRACT "Rate limits and greylisting count per node unless [directory] kind = "postgres"":
 * two ringmta nodes on one PostgreSQL directory (a real PostgreSQL 15 started by this file) share their rate
 * limits and greylisting through it. `ip` "3/1m": two messages through node A, then two through node B → the
 * fourth is 451 4.7.1. Greylisting (delay 2 s): the first try on node A is deferred, the retry after the delay
 * on node B is accepted (an early one through B is still deferred). The database stopped: both nodes still answer at
 * once with their local counts (never 5xx, nothing hangs), the local limit still applies; the same with the
 * database hung (SIGSTOP).
 */
import postgres from "postgres";
import { afterAll, beforeAll, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, MAIN, REPO, havePeer, peerTest, sendMail, simpleMessage, sleep, SmtpClient, startServer, tempDir, waitFor, type Reply, type Srv } from "../helpers/index.ts";
import { startPostgres, type Postgres } from "../helpers/postgres.ts";

let pg: Postgres | null = null;
let sql: postgres.Sql | null = null;
let nodeA: Srv | null = null;
let nodeB: Srv | null = null;
const BOB = "bob@example.test";

const codeOf = (r: Reply | null | undefined): string => (r ? `${r.code} ${r.enhanced}` : "none");

/** One message from `ip`: the reply that ended it (MAIL, RCPT or the final one). */
async function send(srv: Srv, ip: string, from: string): Promise<string> {
  const c = await SmtpClient.connect(srv.ports.mx, { localAddress: ip });
  try {
    await c.hello();
    const r = await sendMail(c, from, [BOB], simpleMessage({ from, to: BOB }));
    if (r.mail.code !== 250) return codeOf(r.mail);
    if (r.rcpts[0]!.code !== 250) return codeOf(r.rcpts[0]);
    return codeOf(r.final);
  } finally {
    c.destroy();
  }
}

const usable = havePeer("initdb");

beforeAll(async () => {
  if (!usable) return;
  pg = await startPostgres();
  sql = postgres(pg.url, { onnotice: () => {} });
  const dir = tempDir("ringmta-fleetlim-");
  const cliConfig = join(dir, "ringmta.toml");
  writeFileSync(cliConfig, `[directory]\nkind = "postgres"\nurl = "${pg.url}"\n`);
  const m = spawnSync(BUN, [MAIN, "directory", "migrate", "--config", cliConfig], { cwd: REPO, encoding: "utf8" });
  if (m.status !== 0) throw new Error(`directory migrate failed: ${m.stderr}`);
  await sql`INSERT INTO ringmta_domains (domain) VALUES ('example.test')`;
  await sql`INSERT INTO ringmta_users (address, password_hash) VALUES (${BOB}, 'x')`;
  // The rate limit is per address and greylisting per /24: each test uses its own loopback /24.
  const config = [
    "[directory]",
    'kind = "postgres"',
    `url = "${pg.url}"`,
    "[defence]",
    'greylist = "on"',
    'greylist_delay = "2s"',
    "[[rate_limits]]",
    'key = "ip"',
    'rate = "3/1m"',
    "",
  ].join("\n");
  nodeA = await startServer({ config });
  nodeB = await startServer({ config });
}, 120_000);

afterAll(async () => {
  await nodeA?.dispose();
  await nodeB?.dispose();
  await sql?.end({ timeout: 1 });
  pg?.dispose();
}, 60_000);

peerTest("initdb", "greylisting over two nodes: first try on A deferred (451 4.7.1), retry on B after the delay accepted", async () => {
  const from = "grey@remote.test";
  expect(await send(nodeA!, "127.0.1.1", from)).toBe("451 4.7.1");
  // Another triple: through B before the delay it is still deferred (the first sighting on A counts).
  expect(await send(nodeA!, "127.0.4.1", "early@remote.test")).toBe("451 4.7.1");
  expect(await send(nodeB!, "127.0.4.1", "early@remote.test")).toBe("451 4.7.1");
  await sleep(2200);
  // Node B never saw the first triple: only the fleet's record lets it pass.
  expect(await send(nodeB!, "127.0.1.1", from)).toBe("250 2.0.0");
  const rows = await sql!<Array<{ triple: string; known: boolean }>>`
    SELECT triple, known_until IS NOT NULL AS known FROM ringmta_greylist ORDER BY triple`;
  expect(rows).toEqual([
    { triple: `127.0.1.0/24 ${from} ${BOB}`, known: true },
    { triple: `127.0.4.0/24 early@remote.test ${BOB}`, known: false },
  ]);
}, 30_000);

peerTest("initdb", 'rate limit ip "3/1m" over two nodes: 2 messages through A, 2 through B → the 4th is 451 4.7.1', async () => {
  const ip = "127.0.2.1";
  const from = "rate@remote.test";
  // Known triple first (greylisting is not what this test is about): A defers once, then after the delay it passes.
  await sql!`INSERT INTO ringmta_greylist (triple, first_seen, known_until)
             VALUES (${`127.0.2.0/24 ${from} ${BOB}`}, now(), now() + interval '1 day')`;
  const got = [await send(nodeA!, ip, from), await send(nodeA!, ip, from), await send(nodeB!, ip, from), await send(nodeB!, ip, from)];
  expect(got).toEqual(["250 2.0.0", "250 2.0.0", "250 2.0.0", "451 4.7.1"]);
  await waitFor(() => /defence\.reject.*"reason":"rate_limit".*"key":"ip".*"value":"127\.0\.2\.1"/.test(nodeB!.logs()) || null, 5000);
}, 30_000);

peerTest("initdb", "the database hung (SIGSTOP): a command waits at most the 0.5 s query timeout, never 5xx", async () => {
  pg!.freeze(true);
  try {
    for (const n of [nodeA!, nodeB!, nodeA!, nodeB!]) {
      const t = Date.now();
      expect(await send(n, "127.0.5.1", "hung@remote.test")).toMatch(/^4/);
      expect(Date.now() - t).toBeLessThan(3000);
    }
    for (const n of [nodeA!, nodeB!]) await waitFor(() => n.logs().includes("no answer from the database within 500 ms") || null, 5000);
  } finally {
    pg!.freeze(false);
  }
}, 30_000);

peerTest("initdb", "the database stopped: both nodes answer at once from their local counts, never 5xx", async () => {
  pg!.stop();
  const ip = "127.0.3.1";
  const t0 = Date.now();
  const replies: string[] = [];
  for (const n of [nodeA!, nodeB!, nodeA!, nodeB!, nodeA!, nodeA!]) {
    const t = Date.now();
    replies.push(await send(n, ip, "down@remote.test"));
    expect(Date.now() - t).toBeLessThan(3000);
  }
  expect(Date.now() - t0).toBeLessThan(10_000);
  for (const r of replies) expect(r).toMatch(/^4/);
  // Node A alone has seen four MAILs from the address: its own limit (3/1m) refuses the fourth.
  expect(replies[5]).toBe("451 4.7.1");
  for (const n of [nodeA!, nodeB!]) await waitFor(() => n.logs().includes("defence.shared_unreachable") || null, 5000);
  pg!.start();
}, 30_000);
