/**
 * Per-recipient delivery state, `<id>.state`: an append-only log, one JSON object per line:
 *   {"i":<recipient index>,"s":"delivered"|"deferred"|"failed","a":<attempts>,"n":<next attempt, ms or 0>,"r":"<last reply>",
 *    "m":"<remote MTA>"?, "w":1? (a delay DSN was sent), "l":1? (relayed to a server without DSN)}
 * The last record for an index wins. Lines are appended and fsync'd by the delivery worker; a crash can leave the
 * last line torn (no newline or half a JSON object), which a reader ignores: that attempt simply did not happen.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { Buffer } from "node:buffer";
import { FILE_MODE, writeAllSync } from "../fsio/index.ts";
import type { SyncBatcher } from "../fsio/index.ts";

export type RecipientStatus = "queued" | "delivered" | "deferred" | "failed";

export interface RecipientState {
  status: RecipientStatus;
  attempts: number;
  /** ms since the epoch, 0 when not scheduled. */
  nextAttempt: number;
  lastReply: string;
  /** The host that gave lastReply (RFC 3464 Remote-MTA). */
  remoteMta?: string;
  /** A "delayed" DSN went out for this recipient (sent once). */
  warned?: boolean;
  /** Delivered to a server without DSN (RFC 3461 §5.2.2: "relayed"). */
  relayed?: boolean;
}

export interface StateRecord {
  index: number;
  status: Exclude<RecipientStatus, "queued">;
  attempts: number;
  nextAttempt: number;
  lastReply: string;
  remoteMta?: string;
  warned?: boolean;
  relayed?: boolean;
}

export function initialState(count: number): RecipientState[] {
  const out: RecipientState[] = [];
  for (let i = 0; i < count; i++) out.push({ status: "queued", attempts: 0, nextAttempt: 0, lastReply: "" });
  return out;
}

export function isFinal(s: RecipientState): boolean {
  return s.status === "delivered" || s.status === "failed";
}

/** Apply the records of log text to `states` (one per recipient). Malformed and torn lines are skipped. */
export function applyStateLog(text: string, states: RecipientState[]): void {
  let start = 0;
  for (;;) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) break; // no newline: a torn last line (or nothing left)
    const line = text.slice(start, nl);
    start = nl + 1;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof rec !== "object" || rec === null) continue;
    const r = rec as { i?: unknown; s?: unknown; a?: unknown; n?: unknown; r?: unknown; m?: unknown; w?: unknown; l?: unknown };
    if (typeof r.i !== "number" || !Number.isInteger(r.i) || r.i < 0 || r.i >= states.length) continue;
    if (r.s !== "delivered" && r.s !== "deferred" && r.s !== "failed") continue;
    states[r.i] = {
      status: r.s,
      attempts: typeof r.a === "number" ? r.a : 0,
      nextAttempt: typeof r.n === "number" ? r.n : 0,
      lastReply: typeof r.r === "string" ? r.r : "",
      ...(typeof r.m === "string" ? { remoteMta: r.m } : {}),
      ...(r.w === 1 ? { warned: true } : {}),
      ...(r.l === 1 ? { relayed: true } : {}),
    };
  }
}

/** Read `<id>.state` (absent, or path null = nothing recorded yet). */
export function readStateLog(path: string | null, count: number): RecipientState[] {
  const states = initialState(count);
  if (path === null) return states;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return states;
    throw err;
  }
  applyStateLog(text, states);
  return states;
}

export function encodeStateRecords(records: readonly StateRecord[]): string {
  let s = "";
  for (const r of records) {
    const o: Record<string, unknown> = { i: r.index, s: r.status, a: r.attempts, n: r.nextAttempt, r: r.lastReply };
    if (r.remoteMta !== undefined) o.m = r.remoteMta;
    if (r.warned) o.w = 1;
    if (r.relayed) o.l = 1;
    s += JSON.stringify(o) + "\n";
  }
  return s;
}

/**
 * Append records and make them durable. Returns once fsync'd (grouped through `batcher`). `created` tells the
 * caller the file is new, so its directory entry must be fsync'd as well.
 */
export async function appendStateRecords(
  path: string,
  records: readonly StateRecord[],
  batcher: SyncBatcher,
): Promise<{ created: boolean }> {
  let created = false;
  let fd: number;
  try {
    fd = openSync(path, "wx", FILE_MODE);
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    fd = openSync(path, "a+", FILE_MODE);
  }
  try {
    let text = encodeStateRecords(records);
    if (!created) {
      // A torn last line from a crash must not swallow the first new record: start on a fresh line.
      const size = fstatSync(fd).size;
      const last = Buffer.alloc(1);
      if (size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a) text = "\n" + text;
    }
    writeAllSync(fd, Buffer.from(text, "utf8"));
    await batcher.syncFd(fd);
  } finally {
    closeSync(fd);
  }
  return { created };
}
