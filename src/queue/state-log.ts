/**
 * Per-recipient delivery state, `<id>.state`: an append-only log, one JSON object per line:
 *   {"i":<recipient index>,"s":"delivered"|"deferred"|"failed","a":<attempts>,"n":<next attempt, ms or 0>,
 *    "c":<reply code>,"e":"<enhanced status>","t":"<text>","m":"<remote MTA>"?, "w":1? (a delay DSN was sent),
 *    "l":1? (relayed to a server without DSN), "p":"dane"|"mta-sts"|"mta-sts-testing"? (the outbound TLS policy)}
 * The outcome is stored as its parts (mail/ Outcome), never as a reply line to be parsed again. Lines written by
 * earlier versions carry "r":"<last reply>" instead of c/e/t: those are converted once, as they are read.
 * The last record for an index wins. Lines are appended and fsync'd by the delivery worker; a crash can leave the
 * last line torn (no newline or half a JSON object), which a reader ignores: that attempt simply did not happen.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { Buffer } from "node:buffer";
import type { Outcome } from "../mail/index.ts";
import { FILE_MODE, writeAllSync } from "../fsio/index.ts";
import type { SyncBatcher } from "../fsio/index.ts";

export type RecipientStatus = "queued" | "delivered" | "deferred" | "failed";

export interface RecipientState {
  status: RecipientStatus;
  attempts: number;
  /** ms since the epoch, 0 when not scheduled. */
  nextAttempt: number;
  /** The outcome of the last attempt; null before the first. Its kind is `status`. */
  last: Outcome | null;
  /** A "delayed" DSN went out for this recipient (sent once). */
  warned?: boolean;
}

export interface StateRecord {
  index: number;
  attempts: number;
  nextAttempt: number;
  /** What the attempt came to (its kind is the recipient's new status). */
  outcome: Outcome;
  warned?: boolean;
}

export function initialState(count: number): RecipientState[] {
  const out: RecipientState[] = [];
  for (let i = 0; i < count; i++) out.push({ status: "queued", attempts: 0, nextAttempt: 0, last: null });
  return out;
}

export function isFinal(s: RecipientState): boolean {
  return s.status === "delivered" || s.status === "failed";
}

/** The state a record leaves its recipient in. */
export function stateOf(r: StateRecord): RecipientState {
  const st: RecipientState = { status: r.outcome.kind, attempts: r.attempts, nextAttempt: r.nextAttempt, last: r.outcome };
  if (r.warned) st.warned = true;
  return st;
}

const LEGACY_REPLY = /^(?:(\d{3})(?: +|$))?(?:([245]\.\d{1,3}\.\d{1,3})(?: +|$))?([\s\S]*)$/;

/**
 * A reply line of the previous state-log format ("451 4.3.0 text" from a server or ours, or "4.3.0 text" of the
 * Maildir courier) as an outcome. Only for lines written before outcomes were stored structured.
 */
export function legacyOutcome(kind: Outcome["kind"], reply: string, remoteMta: string | undefined, relayed: boolean): Outcome {
  const m = LEGACY_REPLY.exec(reply)!;
  const enhanced = m[2] ?? "";
  const cls = enhanced !== "" ? enhanced[0] : m[1] !== undefined ? m[1][0] : kind === "delivered" ? "2" : kind === "failed" ? "5" : "4";
  const code = m[1] !== undefined ? Number(m[1]) : cls === "2" ? 250 : cls === "5" ? 550 : 451;
  const o: Outcome = { kind, code, enhanced, text: m[3] };
  if (remoteMta !== undefined) o.remoteMta = remoteMta;
  if (relayed) o.relayed = true;
  return o;
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
    const r = rec as { i?: unknown; s?: unknown; a?: unknown; n?: unknown; c?: unknown; e?: unknown; t?: unknown; r?: unknown; m?: unknown; w?: unknown; l?: unknown; p?: unknown };
    if (typeof r.i !== "number" || !Number.isInteger(r.i) || r.i < 0 || r.i >= states.length) continue;
    if (r.s !== "delivered" && r.s !== "deferred" && r.s !== "failed") continue;
    const remoteMta = typeof r.m === "string" ? r.m : undefined;
    let last: Outcome;
    if (typeof r.c === "number") {
      last = { kind: r.s, code: r.c, enhanced: typeof r.e === "string" ? r.e : "", text: typeof r.t === "string" ? r.t : "" };
      if (remoteMta !== undefined) last.remoteMta = remoteMta;
      if (r.l === 1) last.relayed = true;
      if (r.p === "dane" || r.p === "mta-sts" || r.p === "mta-sts-testing") last.tlsPolicy = r.p;
    } else {
      last = legacyOutcome(r.s, typeof r.r === "string" ? r.r : "", remoteMta, r.l === 1);
    }
    states[r.i] = {
      status: r.s,
      attempts: typeof r.a === "number" ? r.a : 0,
      nextAttempt: typeof r.n === "number" ? r.n : 0,
      last,
      ...(r.w === 1 ? { warned: true } : {}),
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
    const oc = r.outcome;
    const o: Record<string, unknown> = { i: r.index, s: oc.kind, a: r.attempts, n: r.nextAttempt, c: oc.code, e: oc.enhanced, t: oc.text };
    if (oc.remoteMta !== undefined) o.m = oc.remoteMta;
    if (oc.tlsPolicy !== undefined) o.p = oc.tlsPolicy;
    if (r.warned) o.w = 1;
    if (oc.relayed) o.l = 1;
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
