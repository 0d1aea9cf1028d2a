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

/**
 * stderr, written once per event-loop turn: a busy server logs several lines per message, and one write(2) per
 * line showed up as 14% of the event loop in a profile under load. Lines are flushed on the next turn (setImmediate)
 * and at process exit, so at most one turn's lines are lost to a kill -9.
 */
export function bufferedStderr(): LogSink & { flush(): void } {
  let pending: string[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.length === 1 ? pending[0]! : pending.join("");
    pending = [];
    process.stderr.write(text);
  };
  process.on("exit", flush);
  return {
    write(line: string): void {
      pending.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}

export function createLogger(format: LogFormat, sink: LogSink = bufferedStderr()): Logger {
  const emit = (level: LogLevel, event: string, given: Record<string, unknown> = {}): void => {
    const fields = withoutReserved(given);
    const ts = new Date().toISOString();
    if (format === "json") {
      sink.write(JSON.stringify({ ts, level, event, ...fields }) + "\n");
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
