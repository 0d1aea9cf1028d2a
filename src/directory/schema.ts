/**
 * The PostgreSQL schema of the directory (CONTRACT: ringmta_domains(domain), ringmta_users(address,
 * password_hash), ringmta_aliases(address, target), one row per alias target) and its migration.
 *
 * Every change to the three tables bumps one version counter and sends NOTIFY ringmta_directory (statement
 * triggers, so a bulk insert is one notification). Nodes LISTEN for it to reload at once, and poll the counter as
 * the fallback for a notification missed while their LISTEN connection was down.
 */
import type postgres from "postgres";

export const NOTIFY_CHANNEL = "ringmta_directory";

/** Schema versions, each applied once in order; never edit a released step, append a new one. */
const STEPS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE IF NOT EXISTS ringmta_domains (
  domain text PRIMARY KEY
);
CREATE UNIQUE INDEX IF NOT EXISTS ringmta_domains_lower ON ringmta_domains (lower(domain));
CREATE TABLE IF NOT EXISTS ringmta_users (
  address text PRIMARY KEY,
  password_hash text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ringmta_users_lower ON ringmta_users (lower(address));
CREATE TABLE IF NOT EXISTS ringmta_aliases (
  address text NOT NULL,
  target text NOT NULL,
  PRIMARY KEY (address, target)
);
CREATE INDEX IF NOT EXISTS ringmta_aliases_lower ON ringmta_aliases (lower(address));
UPDATE ringmta_directory_state SET version = version + 1;
CREATE OR REPLACE FUNCTION ringmta_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE ringmta_directory_state SET version = version + 1;
  PERFORM pg_notify('${NOTIFY_CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS ringmta_domains_changed ON ringmta_domains;
CREATE TRIGGER ringmta_domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ringmta_domains
  FOR EACH STATEMENT EXECUTE FUNCTION ringmta_directory_changed();
DROP TRIGGER IF EXISTS ringmta_users_changed ON ringmta_users;
CREATE TRIGGER ringmta_users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ringmta_users
  FOR EACH STATEMENT EXECUTE FUNCTION ringmta_directory_changed();
DROP TRIGGER IF EXISTS ringmta_aliases_changed ON ringmta_aliases;
CREATE TRIGGER ringmta_aliases_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ringmta_aliases
  FOR EACH STATEMENT EXECUTE FUNCTION ringmta_directory_changed();
`,
  },
  {
    // AUTH brute-force records shared by the nodes (auth-failures.ts): one row per failed AUTH, expired after the
    // 10-minute window; one row per blocked client address until its block ends.
    version: 2,
    sql: `
CREATE TABLE IF NOT EXISTS ringmta_auth_failures (
  ip text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ringmta_auth_failures_ip_at ON ringmta_auth_failures (ip, at);
CREATE INDEX IF NOT EXISTS ringmta_auth_failures_at ON ringmta_auth_failures (at);
CREATE TABLE IF NOT EXISTS ringmta_auth_blocks (
  ip text PRIMARY KEY,
  until timestamptz NOT NULL
);
`,
  },
  {
    // Rate limits and greylisting shared by the nodes (shared-limits.ts): one row per limit and key value (its
    // GCRA theoretical arrival time, ms since the epoch on the database's clock), deleted once idle; one row per
    // greylisting triple, deleted when it lapses.
    version: 3,
    sql: `
CREATE TABLE IF NOT EXISTS ringmta_rate_limits (
  k text PRIMARY KEY,
  tat double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS ringmta_rate_limits_tat ON ringmta_rate_limits (tat);
CREATE TABLE IF NOT EXISTS ringmta_greylist (
  triple text PRIMARY KEY,
  first_seen timestamptz NOT NULL,
  known_until timestamptz
);
`,
  },
];

export const SCHEMA_VERSION = STEPS[STEPS.length - 1]!.version;

export interface MigrateResult {
  from: number;
  to: number;
}

/**
 * Create or upgrade the tables; idempotent. One transaction under an advisory lock, so two nodes migrating at
 * once apply each step once.
 */
export async function migrate(sql: postgres.Sql): Promise<MigrateResult> {
  return await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext('ringmta_directory_migrate'))`;
    await tx.unsafe(`
CREATE TABLE IF NOT EXISTS ringmta_directory_state (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  schema_version integer NOT NULL,
  version bigint NOT NULL
);
INSERT INTO ringmta_directory_state (id, schema_version, version) VALUES (true, 0, 0) ON CONFLICT DO NOTHING;`);
    const [row] = await tx<Array<{ schema_version: number }>>`SELECT schema_version FROM ringmta_directory_state`;
    const from = row!.schema_version;
    for (const step of STEPS) {
      if (step.version <= from) continue;
      await tx.unsafe(step.sql);
      await tx`UPDATE ringmta_directory_state SET schema_version = ${step.version}`;
    }
    return { from, to: Math.max(from, SCHEMA_VERSION) };
  });
}
