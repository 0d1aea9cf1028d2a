/** Sizes ("1KiB", "100KiB", "1MB", "512"), durations ("30s", "2m", "500ms") and their display. */

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|k|mb|mib|m|gb|gib|g)?$/i;
const SIZE_UNIT: Record<string, number> = {
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/** Bytes of a size such as "1KiB"; null when it is not one. */
export function parseSize(s: string): number | null {
  const m = SIZE.exec(s.trim());
  if (!m) return null;
  const n = Math.round(Number(m[1]) * SIZE_UNIT[(m[2] ?? "b").toLowerCase()]!);
  return Number.isFinite(n) ? n : null;
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i;
const DURATION_UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a duration such as "30s" (a bare number is seconds); null when it is not one. */
export function parseDuration(s: string): number | null {
  const m = DURATION.exec(s.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * DURATION_UNIT[(m[2] ?? "s").toLowerCase()]!);
}

/** "1KiB", "100KiB", "1.5MiB": the shortest binary-unit spelling. */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)}MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)}KiB`;
  return `${bytes}B`;
}

/** Thousands separated with a thin comma: 21800 → "21,800". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
