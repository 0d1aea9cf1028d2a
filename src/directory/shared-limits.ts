/**
 * Rate limits and greylisting shared by the nodes of a fleet through the directory's database (kind = "postgres";
 * CONTRACT: "Rate limits and greylisting count per node unless [directory] kind = "postgres""), so a client spread
 * over the nodes behind a load balancer meets the same `[[rate_limits]]`, and a triple greylisted on one node
 * passes on another after the delay.
 *
 * Design: one statement (an UPSERT ... RETURNING) per decision, with a short timeout, in front of which each node
 * keeps its local state as the fast path (inbound/defence.ts):
 * - rate limits: the same GCRA as inbound/rate-limiter.ts, its TAT kept in ringmta_rate_limits (one row per limit
 *   and key value, on the database's clock). At MAIL (and at each RCPT for `recipient` limits), after the local
 *   limiter allowed it, one transaction with one conditional upsert per configured limit checks and charges them
 *   all, or refuses and charges none (rolled back).
 * - greylisting: a triple the node already knows passes locally with no query; otherwise one upsert on
 *   ringmta_greylist records the first sighting or, once the delay has passed on any node, makes it known.
 * Bound on writes: per message, one transaction for the MAIL-time limits (at most one row per configured limit)
 * plus, per RCPT, one row per `recipient` limit and at most one greylisting upsert (none for a known triple).
 * Expired rows (idle buckets, lapsed triples) are deleted once a minute.
 *
 * Failure: a query that fails or does not answer within QUERY_TIMEOUT_MS gives null (the caller keeps its local
 * answer), logged once per outage; after a failure the database is left alone for RETRY_MS, so SMTP never waits on
 * a database that is down, only — at most QUERY_TIMEOUT_MS — on the one query that found out.
 */
import type postgres from "postgres";
import { connect } from "./postgres-directory.ts";
import type { DirectoryLog } from "./types.ts";

const QUERY_TIMEOUT_MS = 500;
const RETRY_MS = 5000;
const EXPIRE_EVERY_MS = 60_000;
/** As inbound/greylist.ts (CONTRACT): a retry within 24 hours passes; a known triple lasts 35 days. */
const RETRY_WINDOW_S = 24 * 3600;
const KNOWN_S = 35 * 24 * 3600;

export interface FleetRateCharge {
  /** Names the limit and the key value, the same on every node (e.g. "ip 3/1m 192.0.2.1"). */
  key: string;
  count: number;
  windowMs: number;
}

export interface SharedLimitsOptions {
  url: string;
  log: DirectoryLog;
  now?: () => number;
}

class Refused extends Error {
  constructor(readonly index: number) {
    super("refused");
  }
}

class NoAnswer extends Error {}

export class SharedLimits {
  private readonly sql: postgres.Sql;
  private readonly now: () => number;
  private downUntil = 0;
  private failing = false;
  private lastExpire: number;
  private closed = false;

  constructor(private readonly opts: SharedLimitsOptions) {
    this.sql = connect(opts.url, { max: 2 });
    this.now = opts.now ?? Date.now;
    this.lastExpire = this.now();
  }

  /**
   * Checks and charges every charge fleet-wide: -1 when all are within their rate (all charged), the index of the
   * first over its rate (none charged), null when the database did not answer (use the local answer).
   */
  rate(charges: ReadonlyArray<FleetRateCharge>): Promise<number | null> {
    if (charges.length === 0) return Promise.resolve(-1);
    return this.run(async () => {
      try {
        await this.sql.begin(async (tx) => {
          for (let i = 0; i < charges.length; i++) {
            const c = charges[i]!;
            const interval = c.windowMs / c.count;
            const rows = await tx`
              INSERT INTO ringmta_rate_limits AS r (k, tat)
              VALUES (${c.key}, extract(epoch FROM clock_timestamp()) * 1000 + ${interval}::float8)
              ON CONFLICT (k) DO UPDATE SET tat = GREATEST(r.tat + ${interval}::float8, EXCLUDED.tat)
              WHERE GREATEST(r.tat + ${interval}::float8, EXCLUDED.tat) - EXCLUDED.tat + ${interval}::float8
                    <= ${c.windowMs}::float8 + 0.001
              RETURNING tat`;
            if (rows.length === 0) throw new Refused(i);
          }
        });
        return -1;
      } catch (e) {
        if (e instanceof Refused) return e.index;
        throw e;
      }
    });
  }

  /** One delivery attempt of the triple fleet-wide: "pass" or "defer", or null when the database did not answer. */
  greylist(key: string, delayMs: number): Promise<"pass" | "defer" | null> {
    return this.run(async () => {
      const [row] = await this.sql<Array<{ pass: boolean }>>`
        INSERT INTO ringmta_greylist AS g (triple, first_seen) VALUES (${key}, now())
        ON CONFLICT (triple) DO UPDATE SET
          first_seen = CASE
            WHEN g.known_until > now() THEN g.first_seen
            WHEN g.known_until IS NULL AND g.first_seen > now() - make_interval(secs => ${RETRY_WINDOW_S}) THEN g.first_seen
            ELSE now() END,
          known_until = CASE
            WHEN g.known_until > now() THEN now() + make_interval(secs => ${KNOWN_S})
            WHEN g.known_until IS NULL AND g.first_seen > now() - make_interval(secs => ${RETRY_WINDOW_S})
                 AND g.first_seen <= now() - make_interval(secs => ${delayMs / 1000}::float8)
              THEN now() + make_interval(secs => ${KNOWN_S})
            ELSE NULL END
        RETURNING known_until IS NOT NULL AS pass`;
      return row!.pass ? "pass" : "defer";
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.sql.end({ timeout: 1 });
  }

  /** Runs `q` with the timeout and the back-off; null when it failed (logged once per outage). */
  private async run<T>(q: () => Promise<T>): Promise<T | null> {
    const t = this.now();
    if (this.closed || t < this.downUntil) return null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NoAnswer(`no answer from the database within ${QUERY_TIMEOUT_MS} ms`)), QUERY_TIMEOUT_MS);
    });
    const p = q();
    p.catch(() => {
      // Settled after the timeout: already reported.
    });
    try {
      const r = await Promise.race([p, timeout]);
      if (this.failing) this.opts.log.info("defence.shared_reachable", {});
      this.failing = false;
      this.expire(t);
      return r;
    } catch (e) {
      if (!this.failing) {
        this.opts.log.warn("defence.shared_unreachable", { error: String(e), note: "counting rate limits and greylisting on this node only" });
      }
      this.failing = true;
      this.downUntil = this.now() + RETRY_MS;
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  private expire(t: number): void {
    if (t - this.lastExpire < EXPIRE_EVERY_MS) return;
    this.lastExpire = t;
    this.sql`
      DELETE FROM ringmta_rate_limits WHERE tat < extract(epoch FROM clock_timestamp()) * 1000`.then(
      () =>
        this.sql`DELETE FROM ringmta_greylist
                 WHERE (known_until IS NULL AND first_seen <= now() - make_interval(secs => ${RETRY_WINDOW_S}))
                    OR known_until <= now()`,
    ).catch(() => {
      // Tried again in a minute.
    });
  }
}
