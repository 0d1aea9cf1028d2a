/**
 * What `user add/del/list` do when [directory] kind = "postgres": they write the shared table, and the triggers
 * tell every node. Addresses are unique case-insensitively (the table's lower(address) index), as in the users
 * file; the stored case is the canonical AUTH name.
 */
import type postgres from "postgres";

export async function upsertUser(sql: postgres.Sql, address: string, hash: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`DELETE FROM ringmta_users WHERE lower(address) = lower(${address})`;
    await tx`INSERT INTO ringmta_users (address, password_hash) VALUES (${address}, ${hash})`;
  });
}

/** True when a user was removed. */
export async function deleteUser(sql: postgres.Sql, address: string): Promise<boolean> {
  const r = await sql`DELETE FROM ringmta_users WHERE lower(address) = lower(${address})`;
  return r.count > 0;
}

export async function listUsers(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<Array<{ address: string }>>`SELECT address FROM ringmta_users ORDER BY address`;
  return rows.map((r) => r.address);
}
