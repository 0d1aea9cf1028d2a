/**
 * The directory port: where local domains, users (with their password hashes) and aliases come from. policy/
 * and auth/ read it only through these types, so neither knows whether the source is the config and users file
 * or a PostgreSQL database shared by a fleet.
 */

export interface DirectoryUser {
  /** The address as stored (its case is kept for the canonical AUTH name). */
  address: string;
  /** A PHC string (argon2id as `user add` writes it; bcrypt accepted). */
  hash: string;
}

/** One consistent view of the directory. Keys are lower-cased; lookups are case-insensitive (as Postfix maps). */
export interface DirectorySnapshot {
  /** Local domains, lower-cased, in the source's order (the first one is where a bare <postmaster> goes). */
  readonly domains: ReadonlySet<string>;
  /** addressKey(address) → user. */
  readonly users: ReadonlyMap<string, DirectoryUser>;
  /** addressKey(alias) → its targets, as written. */
  readonly aliases: ReadonlyMap<string, readonly string[]>;
}

/** What a reader needs: the current view, or null while the source cannot vouch for one (RCPT 451, AUTH 454). */
export interface DirectoryView {
  snapshot(): DirectorySnapshot | null;
}

export interface Directory extends DirectoryView {
  readonly kind: "file" | "postgres";
  /** Called after every reload of the view and when the source answers again after an outage; returns an
   *  unsubscribe. */
  onChange(listener: () => void): () => void;
  /** Stop timers and close connections. */
  close(): Promise<void>;
}

/** Where a source reports reconnects and outages (observe/'s Logger fits). */
export interface DirectoryLog {
  info(event: string, fields: Record<string, unknown>): void;
  warn(event: string, fields: Record<string, unknown>): void;
}
