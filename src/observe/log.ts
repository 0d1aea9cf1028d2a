/**
 * Structured logging: one JSON line per event on stderr (or a readable text line for people at a terminal).
 * Fields never hold passwords or message bodies; callers pass only envelope facts.
 */

export type LogFormat = "json" | "text";
export type LogLevel = "info" | "warn" | "error";

export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export interface LogSink {
  write(line: string): void;
}

/**
 * Values come partly from clients (HELO names, addresses), so in text lines anything that could forge a field, a
 * line or a terminal escape (space, quote, =, backslash, control characters) is quoted and escaped.
 */
const NEEDS_QUOTES = /[\s"=\\\x00-\x1f\x7f]/;

function textValue(v: unknown): string {
  if (typeof v === "string") return v === "" || NEEDS_QUOTES.test(v) ? JSON.stringify(v).replace(/\x7f/g, "\\u007f") : v;
  return JSON.stringify(v);
}

/** A field named like a line's own keys must not overwrite them. */
function withoutReserved(fields: Record<string, unknown>): Record<string, unknown> {
  if (!("ts" in fields || "level" in fields || "event" in fields)) return fields;
  const { ts: _t, level: _l, event: _e, ...rest } = fields;
  return rest;
}

/** How long lines wait for company before one write(2) takes them all. */
const FLUSH_DELAY_MS = 10;
/** Flush at once beyond this much text (bounded memory whatever the log rate). */
const FLUSH_AT_CHARS = 64 * 1024;

/**
 * stderr, batched: a busy server logs several lines per message, and one write(2) per line showed up as 14% of the
 * event loop in a profile under load; one write per event-loop turn still meant about one write per message with
 * 20 sessions. Lines are flushed 10 ms after the first one waiting, at 64 KiB, and at process exit, so at most
 * 10 ms of lines are lost to a kill -9.
 */
export function bufferedStderr(): LogSink & { flush(): void } {
  let pending = "";
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = (): void => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (pending === "") return;
    const text = pending;
    pending = "";
    process.stderr.write(text);
  };
  process.on("exit", flush);
  return {
    write(line: string): void {
      pending += line;
      if (pending.length >= FLUSH_AT_CHARS) flush();
      else if (timer === null) {
        timer = setTimeout(flush, FLUSH_DELAY_MS);
        // The exit hook flushes what is left; a waiting line must not keep the process alive.
        (timer as { unref?: () => void }).unref?.();
      }
    },
    flush,
  };
}

/** The ISO time of the last millisecond that logged: lines of the same millisecond share it. */
let tsMs = -1;
let tsText = "";
function isoNow(): string {
  const ms = Date.now();
  if (ms !== tsMs) {
    tsText = new Date(ms).toISOString();
    tsMs = ms;
  }
  return tsText;
}

/**
 * `","level":"…","event":"…"` per level and event name. Event names are a small fixed set of literals, so each
 * head is made once; a map per level keeps the lookup on the event string itself.
 */
const heads: Record<LogLevel, Map<string, string>> = { info: new Map(), warn: new Map(), error: new Map() };
function jsonHead(level: LogLevel, event: string): string {
  const byEvent = heads[level];
  let h = byEvent.get(event);
  if (h === undefined) {
    h = `","level":"${level}","event":${JSON.stringify(event)}`;
    if (byEvent.size < 1000) byEvent.set(event, h);
  }
  return h;
}

export function createLogger(format: LogFormat, sink: LogSink = bufferedStderr()): Logger {
  const emit = (level: LogLevel, event: string, given: Record<string, unknown> = {}): void => {
    const fields = withoutReserved(given);
    const ts = isoNow();
    if (format === "json") {
      // Same text as JSON.stringify({ ts, level, event, ...fields }), without copying the fields into a new object:
      // ts is an ISO string (nothing to escape), the fields' own JSON is spliced in after event.
      const body = JSON.stringify(fields);
      sink.write(`{"ts":"${ts}${jsonHead(level, event)}${body.length > 2 ? "," + body.slice(1) : "}"}\n`);
      return;
    }
    let line = `${ts} ${level.toUpperCase().padEnd(5)} ${event}`;
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${textValue(v)}`;
    sink.write(line + "\n");
  };
  return {
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
  };
}
