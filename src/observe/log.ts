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

function textValue(v: unknown): string {
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

export function createLogger(format: LogFormat, sink: LogSink = { write: (l) => process.stderr.write(l) }): Logger {
  const emit = (level: LogLevel, event: string, fields: Record<string, unknown> = {}): void => {
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
