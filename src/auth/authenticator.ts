/**
 * Checks SMTP AUTH credentials against the users file and keeps the per-client-address failure record that
 * slows, then refuses, brute force (CONTRACT: auth_ip_delay_after, auth_ip_block_after, auth_ip_block).
 * Failures are counted over a sliding 10-minute window; other addresses are never affected.
 */
import type { AuthPort } from "../session/index.ts";
import type { UserEntry } from "./users-file.ts";

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

interface FailureRecord {
  times: number[];
  blockedUntil: number;
}

export class Authenticator implements AuthPort {
  private readonly failures = new Map<string, FailureRecord>();

  constructor(
    private users: Map<string, UserEntry>,
    private readonly hasher: PasswordVerifier,
    private limits: AuthLimits,
    private readonly now: () => number,
    /** A hash to verify against for unknown users, so timing does not tell which users exist. */
    private readonly dummyHash: string,
  ) {}

  /** SIGHUP: new users and limits; the failure record is kept. */
  update(users: Map<string, UserEntry>, limits: AuthLimits): void {
    this.users = users;
    this.limits = limits;
  }

  async verify(user: string, password: string): Promise<string | null> {
    const entry = this.users.get(user.toLowerCase());
    const ok = await this.hasher.verify(password, entry ? entry.hash : this.dummyHash);
    return ok && entry ? entry.address : null;
  }

  ipStatus(clientAddress: string): "ok" | "delay" | "blocked" {
    const rec = this.failures.get(clientAddress);
    if (!rec) return "ok";
    const now = this.now();
    if (rec.blockedUntil > now) return "blocked";
    const recent = this.prune(rec, now);
    if (recent === 0 && rec.blockedUntil <= now) {
      this.failures.delete(clientAddress);
      return "ok";
    }
    return recent >= this.limits.delayAfter ? "delay" : "ok";
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
    if (this.prune(rec, now) >= this.limits.blockAfter) {
      rec.blockedUntil = now + this.limits.blockMs;
      rec.times = [];
    }
  }

  private prune(rec: FailureRecord, now: number): number {
    let i = 0;
    while (i < rec.times.length && now - rec.times[i]! > WINDOW_MS) i++;
    if (i > 0) rec.times.splice(0, i);
    return rec.times.length;
  }
}
