/**
 * Durations and sizes as operators write them in the config file ("5m", "25MiB"). Integers only: a config value
 * like "1.5h" is more often a typo than an intent, and whole units keep the arithmetic exact.
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION_RE = /^(\d{1,15})(ms|s|m|h|d|w)$/;

/** "500ms", "30s", "5m", "2h", "5d", "1w" → milliseconds; anything else → null. Units are lower-case. */
export function parseDuration(s: string): number | null {
  const m = DURATION_RE.exec(s);
  if (m === null) return null;
  const ms = Number(m[1]) * DURATION_UNITS[m[2]];
  return Number.isSafeInteger(ms) ? ms : null;
}

// SI prefixes are powers of 1000 and IEC prefixes powers of 1024 (IEC 80000-13); "k" alone is the SI kilo.
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
};

const SIZE_RE = /^(\d{1,15})\s*([a-z]*)$/;

/** 26214400, "26214400", "25MB" (25·10⁶), "25MiB" (25·2²⁰), "100k", "1KiB" → bytes; anything else → null. */
export function parseSize(s: string | number): number | null {
  if (typeof s === "number") return Number.isSafeInteger(s) && s >= 0 ? s : null;
  const m = SIZE_RE.exec(s.trim().toLowerCase());
  if (m === null) return null;
  const unit = SIZE_UNITS[m[2]];
  if (unit === undefined) return null;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : null;
}
