/**
 * Greylisting (RFC 6647): the first delivery attempt of an unknown (client network, sender, recipient) triple is
 * deferred with a 4xx; a real MTA retries (RFC 5321 §4.5.4.1), a spam cannon usually does not. A retry after
 * `delay` and within 24 hours passes, and the triple is then known for 35 days (each pass renews it), so
 * correspondents are delayed once (RFC 6647 §2.2, §4.1).
 *
 * State: one Map entry per triple (key string → a number: > 0 the first-seen time of a pending triple, < 0 minus
 * the time a known triple expires), at most `maxEntries`, in least-recently-used order; expired entries go first.
 * It survives a restart in a file under DATA (see GreylistFile), rewritten whole every few seconds when changed
 * and at shutdown, never fsync'd per message: losing the last seconds only greylists a few triples once more.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** RFC 6647 §2.2 leaves the windows to the operator; CONTRACT: retry within 24 h, then known for 35 days. */
export const GREYLIST_RETRY_WINDOW_MS = DAY;
export const GREYLIST_KNOWN_MS = 35 * DAY;
/**
 * Default cap on triples. Measured (test/inbound/memory.test.ts, Bun): 161 bytes of heap per triple of typical
 * length, so about 15 MB at the cap; the test holds it under 256 bytes per triple (26 MB).
 */
export const GREYLIST_MAX_ENTRIES = 100_000;

export type GreylistAnswer = "pass" | "defer";

/** The greylisting triple as a map key: network, sender and recipient, the addresses lower-cased. */
export function tripleKey(network: string, sender: string, recipient: string): string {
  return `${network} ${sender.toLowerCase()} ${recipient.toLowerCase()}`;
}

export class GreylistStore {
  private readonly entries = new Map<string, number>();
  private changed = false;

  constructor(private readonly maxEntries = GREYLIST_MAX_ENTRIES) {}

  get size(): number {
    return this.entries.size;
  }

  /** True when the state changed since the last call to saved(). */
  get dirty(): boolean {
    return this.changed;
  }

  /** One delivery attempt of the triple `key` at `now`. */
  attempt(key: string, now: number, delayMs: number): GreylistAnswer {
    const v = this.entries.get(key);
    if (v !== undefined) {
      if (v < 0) {
        if (-v > now) return this.remember(key, -(now + GREYLIST_KNOWN_MS), "pass");
      } else if (now - v < GREYLIST_RETRY_WINDOW_MS) {
        // Too early: keep the first-seen time (a client retrying every second must still wait the delay).
        if (now - v < delayMs) return "defer";
        return this.remember(key, -(now + GREYLIST_KNOWN_MS), "pass");
      }
    }
    // Unknown, or a pending/known triple that expired: seen for the first time now.
    return this.remember(key, now, "defer");
  }

  /** The fleet let `key` pass (another node saw it first): known here from now on, as after a local pass. */
  known(key: string, now: number): void {
    this.remember(key, -(now + GREYLIST_KNOWN_MS), "pass");
  }

  private remember(key: string, value: number, answer: GreylistAnswer): GreylistAnswer {
    const e = this.entries;
    if (!e.delete(key) && e.size >= this.maxEntries) this.evict(value > 0 ? value : -value - GREYLIST_KNOWN_MS);
    e.set(key, value);
    this.changed = true;
    return answer;
  }

  private static expired(v: number, now: number): boolean {
    return v < 0 ? -v <= now : now - v >= GREYLIST_RETRY_WINDOW_MS;
  }

  /**
   * Makes room: every expired entry goes; when none has expired, the least recently used tenth of the cap goes
   * (one pass over the map pays for many insertions).
   */
  private evict(now: number): void {
    const e = this.entries;
    for (const [k, v] of e) if (GreylistStore.expired(v, now)) e.delete(k);
    if (e.size < this.maxEntries) return;
    let drop = Math.max(1, Math.floor(this.maxEntries / 10));
    for (const k of e.keys()) {
      e.delete(k);
      if (--drop === 0) break;
    }
  }

  /** The state as text: a header line, then one line per live triple, JSON key, a space, the number. */
  serialize(now: number): string {
    const lines = [FILE_HEADER];
    for (const [k, v] of this.entries) if (!GreylistStore.expired(v, now)) lines.push(`${JSON.stringify(k)} ${v}`);
    return lines.join("\n") + "\n";
  }

  /** Loads serialize()'s text (oldest first, as written); bad lines are counted and skipped. */
  load(text: string, now: number): { loaded: number; bad: number } {
    let loaded = 0;
    let bad = 0;
    const lines = text.split("\n");
    if (lines[0] !== FILE_HEADER) return { loaded: 0, bad: lines.filter((l) => l !== "").length };
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === "") continue;
      const sp = line.lastIndexOf(" ");
      let key: unknown;
      try {
        key = JSON.parse(line.slice(0, sp));
      } catch {
        key = null;
      }
      const v = Number(line.slice(sp + 1));
      if (sp < 0 || typeof key !== "string" || !Number.isFinite(v) || v === 0) {
        bad++;
        continue;
      }
      if (GreylistStore.expired(v, now)) continue;
      this.remember(key, v, "pass");
      loaded++;
    }
    this.changed = false;
    return { loaded, bad };
  }

  /** Marks the state as written. */
  saved(): void {
    this.changed = false;
  }
}

const FILE_HEADER = "# ringmta greylist v1";

/**
 * The state file (DATA/greylist.db): written whole to a temp file and renamed over the old one (atomic on POSIX
 * filesystems), with one fsync of the temp file per rewrite, so a crash leaves the old or the new state, never half.
 */
export class GreylistFile {
  constructor(readonly path: string) {}

  /** The file's text, or null when there is none. */
  read(): string | null {
    try {
      return readFileSync(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Writes the store when it changed; returns whether it wrote. */
  save(store: GreylistStore, now: number): boolean {
    if (!store.dirty) return false;
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeFileSync(fd, store.serialize(now));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    store.saved();
    return true;
  }
}
