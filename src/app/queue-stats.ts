/**
 * Spool gauges (ringmta_queue_messages, ringmta_queue_oldest_seconds) kept in memory from commits, recovery and
 * delivery results, so a scrape never walks the spool directory. Insertion order is arrival order (ids are
 * added as they are committed), so the oldest entry is the first one still present.
 */
export interface QueueStats {
  readonly count: number;
  add(id: string, arrival: number): void;
  /** Returns the arrival time of a removed id. */
  remove(id: string): number | undefined;
  oldestSeconds(): number;
}

export function queueStats(now: () => number = Date.now): QueueStats {
  const arrivals = new Map<string, number>();
  let oldest = Infinity;
  let oldestStale = false;
  return {
    get count() {
      return arrivals.size;
    },
    add(id, arrival) {
      arrivals.set(id, arrival);
      if (arrival < oldest) oldest = arrival;
    },
    remove(id) {
      const a = arrivals.get(id);
      if (a !== undefined) {
        arrivals.delete(id);
        if (a <= oldest) oldestStale = true;
      }
      return a;
    },
    oldestSeconds() {
      if (arrivals.size === 0) return 0;
      if (oldestStale) {
        oldest = Infinity;
        for (const a of arrivals.values()) if (a < oldest) oldest = a;
        oldestStale = false;
      }
      return Math.max(0, (now() - oldest) / 1000);
    },
  };
}
