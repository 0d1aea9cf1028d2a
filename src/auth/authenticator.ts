/**
 * Checks SMTP AUTH credentials against the directory's users (users file or PostgreSQL) and keeps the
 * per-client-address failure record that slows, then refuses, brute force (CONTRACT: auth_ip_delay_after, auth_ip_block_after, auth_ip_block).
 * Failures are counted over a sliding 10-minute window; other addresses are never affected.
 */
import type { DirectoryView } from "../directory/index.ts";
import { addressKey } from "../mail/index.ts";
import type { AuthPort } from "../session/index.ts";

export interface PasswordVerifier {
  verify(password: string, hash: string): Promise<boolean>;
}

export interface AuthLimits {
  delayAfter: number;
  blockAfter: number;
  blockMs: number;
}

const WINDOW_MS = 10 * 60 * 1000;
/** Bound on remembered addresses, so a spray from many sources cannot grow memory without limit. */
const MAX_TRACKED = 100_000;

/**
 * The failure records of the other nodes of a fleet (kind = "postgres": a table every node writes and reads), so
 * that a client spreading its guesses over the nodes behind a load balancer meets the same limits. Reads are the
 * last fetched figures (synchronous; a node's own failures count locally at once).
 */
export interface SharedFailures {
  /** Failures from this address within the window over all nodes, and the end of a block one of them set (ms). */
  get(clientAddress: string): { failures: number; blockedUntil: number } | undefined;
  /** One failed AUTH from this address (written in the background). */
  add(clientAddress: string): void;
  /** This node blocked the address until `until`: the others see it, and its counted failures are cleared. */
  block(clientAddress: string, until: number): void;
}

interface FailureRecord {
  times: number[];
  blockedUntil: number;
}

export class Authenticator implements AuthPort {
  private readonly failures = new Map<string, FailureRecord>();

  constructor(
    private readonly directory: DirectoryView,
    private readonly hasher: PasswordVerifier,
    private limits: AuthLimits,
    private readonly now: () => number,
    /** A hash to verify against for unknown users, so timing does not tell which users exist. */
    private readonly dummyHash: string,
    private readonly shared: SharedFailures | null = null,
  ) {}

  /** SIGHUP: new limits (users come from the directory); the failure record is kept. */
  update(limits: AuthLimits): void {
    this.limits = limits;
  }

  async verify(user: string, password: string): Promise<string | null> {
    const view = this.directory.snapshot();
    // CONTRACT: directory unavailable → 454 4.7.0 (the session answers a rejection so); never a 535 for it.
    if (view === null) throw new Error("the user directory is unavailable");
    const entry = view.users.get(addressKey(user));
    const ok = await this.hasher.verify(password, entry ? entry.hash : this.dummyHash);
    return ok && entry ? entry.address : null;
  }

  ipStatus(clientAddress: string): "ok" | "delay" | "blocked" {
    const now = this.now();
    const fleet = this.shared?.get(clientAddress);
    if (fleet !== undefined && fleet.blockedUntil > now) return "blocked";
    const rec = this.failures.get(clientAddress);
    let recent = 0;
    if (rec) {
      if (rec.blockedUntil > now) return "blocked";
      recent = this.prune(rec, now);
      if (recent === 0) this.failures.delete(clientAddress);
    }
    return Math.max(recent, fleet?.failures ?? 0) >= this.limits.delayAfter ? "delay" : "ok";
  }

  recordFailure(clientAddress: string): void {
    const now = this.now();
    let rec = this.failures.get(clientAddress);
    if (!rec) {
      if (this.failures.size >= MAX_TRACKED) {
        const oldest = this.failures.keys().next().value;
        if (oldest !== undefined) this.failures.delete(oldest);
      }
      rec = { times: [], blockedUntil: 0 };
      this.failures.set(clientAddress, rec);
    }
    rec.times.push(now);
    // The fleet's count was fetched before this failure: it is one more there too.
    const fleet = this.shared?.get(clientAddress)?.failures ?? 0;
    if (Math.max(this.prune(rec, now), fleet + 1) >= this.limits.blockAfter) {
      rec.blockedUntil = now + this.limits.blockMs;
      rec.times = [];
      // The block replaces the counted failures, this one included: recording it as a failure too would race
      // the block's DELETE on another pooled connection and could leave a stray row behind.
      this.shared?.block(clientAddress, rec.blockedUntil);
    } else {
      this.shared?.add(clientAddress);
    }
  }

  private prune(rec: FailureRecord, now: number): number {
    let i = 0;
    while (i < rec.times.length && now - rec.times[i]! > WINDOW_MS) i++;
    if (i > 0) rec.times.splice(0, i);
    return rec.times.length;
  }
}
