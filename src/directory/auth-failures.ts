/**
 * AUTH brute-force records shared by the nodes of a fleet through the directory's database (kind = "postgres"),
 * so a client that spreads its guesses over the nodes behind a load balancer meets the same
 * auth_ip_delay_after / auth_ip_block_after limits as against one node.
 *
 * Writes are bounded by the failures themselves: one INSERT per failed AUTH (a connection is closed after
 * max_auth_failures), one upsert per block. Reads are one poll per POLL_MS that fetches only the addresses at or
 * above the smaller threshold and the blocks in force, so RCPT and AUTH never wait on the database; a node's own
 * failures count locally at once (auth/ keeps them), the others' within a poll. Rows expire: failures after the
 * window, blocks when they end. The database being down only leaves each node with its own records.
 */
import type postgres from "postgres";
import { connect } from "./postgres-directory.ts";
import type { DirectoryLog } from "./types.ts";

const POLL_MS = 1000;
const EXPIRE_EVERY_MS = 60_000;
/** As auth/: failures count over a sliding 10-minute window. */
const WINDOW_S = 600;
/** As auth/'s bound on tracked addresses. */
const MAX_FETCHED = 100_000;

export interface SharedAuthFailuresOptions {
  url: string;
  log: DirectoryLog;
  /** The smallest count worth fetching: min(auth_ip_delay_after, auth_ip_block_after - 1); read at each poll. */
  threshold: () => number;
  now?: () => number;
  pollMs?: number;
}

export class SharedAuthFailures {
  private readonly sql: postgres.Sql;
  private counts = new Map<string, number>();
  private blocks = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastExpire = 0;
  private closed = false;
  private failing = false;
  private readonly now: () => number;

  constructor(private readonly opts: SharedAuthFailuresOptions) {
    this.sql = connect(opts.url, { max: 2 });
    this.now = opts.now ?? Date.now;
    this.schedule(0);
  }

  get(clientAddress: string): { failures: number; blockedUntil: number } | undefined {
    const failures = this.counts.get(clientAddress);
    const blockedUntil = this.blocks.get(clientAddress);
    if (failures === undefined && blockedUntil === undefined) return undefined;
    return { failures: failures ?? 0, blockedUntil: blockedUntil ?? 0 };
  }

  add(clientAddress: string): void {
    this.background(this.sql`INSERT INTO ringmta_auth_failures (ip) VALUES (${clientAddress})`);
  }

  block(clientAddress: string, until: number): void {
    this.blocks.set(clientAddress, until);
    this.counts.delete(clientAddress);
    this.background(
      this.sql.begin(async (tx) => {
        await tx`INSERT INTO ringmta_auth_blocks (ip, until) VALUES (${clientAddress}, to_timestamp(${until / 1000}))
                 ON CONFLICT (ip) DO UPDATE SET until = GREATEST(ringmta_auth_blocks.until, EXCLUDED.until)`;
        await tx`DELETE FROM ringmta_auth_failures WHERE ip = ${clientAddress}`;
      }),
    );
  }

  /** Fetch now (tests; the poll does it every POLL_MS). */
  async refresh(): Promise<void> {
    const min = Math.max(1, this.opts.threshold());
    const counts = await this.sql<Array<{ ip: string; n: number }>>`
      SELECT ip, count(*)::int AS n FROM ringmta_auth_failures
      WHERE at > now() - make_interval(secs => ${WINDOW_S})
      GROUP BY ip HAVING count(*) >= ${min} LIMIT ${MAX_FETCHED}`;
    const blocks = await this.sql<Array<{ ip: string; until: number }>>`
      SELECT ip, (extract(epoch FROM until) * 1000)::float8 AS until FROM ringmta_auth_blocks
      WHERE until > now() LIMIT ${MAX_FETCHED}`;
    this.counts = new Map(counts.map((r) => [r.ip, r.n]));
    this.blocks = new Map(blocks.map((r) => [r.ip, r.until]));
    if (this.now() - this.lastExpire >= EXPIRE_EVERY_MS) {
      this.lastExpire = this.now();
      await this.sql`DELETE FROM ringmta_auth_failures WHERE at <= now() - make_interval(secs => ${WINDOW_S})`;
      await this.sql`DELETE FROM ringmta_auth_blocks WHERE until <= now()`;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.sql.end({ timeout: 1 });
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.refresh().then(
        () => {
          this.failing = false;
          this.schedule(this.opts.pollMs ?? POLL_MS);
        },
        (e: unknown) => {
          // The directory reports the outage; say it here once, and keep the last figures.
          if (!this.failing) this.opts.log.warn("auth.shared_failures_unreachable", { error: String(e) });
          this.failing = true;
          this.schedule(this.opts.pollMs ?? POLL_MS);
        },
      );
    }, ms);
  }

  private background(q: Promise<unknown>): void {
    q.catch(() => {
      // Not recorded for the fleet (the database is down): this node still counts it locally.
    });
  }
}
