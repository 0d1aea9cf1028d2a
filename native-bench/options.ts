/** What one load run is asked to do (parsed from the command line by args.ts, or built by compare). */

export interface SizeClass {
  /** Message size in bytes before dot-stuffing. */
  bytes: number;
  /** Relative weight in the mix. */
  weight: number;
}

export interface LoadOptions {
  host: string;
  port: number;
  connections: number;
  /** Messages to send in all; with `durationMs` the run stops at whichever comes first. */
  messages: number;
  durationMs: number | null;
  sizes: SizeClass[];
  rcpts: number;
  from: string;
  to: string;
  /** Header fields put first in every message (e.g. a DKIM-Signature over the rest); "" for none. */
  headers: string;
  /** The Date field of every message; "" = when the run starts. */
  date: string;
  /** > 0: every body exactly this size, whatever the header fields (a signature over it stays valid). */
  bodySize: number;
  pipelining: boolean;
  starttls: boolean;
  auth: { user: string; pass: string } | null;
  /** Glob of Maildir directories (their new/ and cur/ are counted) or of files, for the end-to-end wait. */
  maildir: string | null;
  /** Give up waiting for Maildir files this long after the last reply. */
  maildirTimeoutMs: number;
  /** Exit non-zero when failed messages exceed this fraction of those attempted. */
  maxErrorRate: number;
  /** Abort when no reply at all arrives for this long. */
  stallMs: number;
  json: boolean;
  /** Show the progress line (only ever on a TTY). */
  progress: boolean;
}

export function defaultLoadOptions(): LoadOptions {
  return {
    host: "127.0.0.1",
    port: 2525,
    connections: 20,
    messages: 20_000,
    durationMs: null,
    sizes: [{ bytes: 1024, weight: 1 }],
    rcpts: 1,
    from: "bench@client.test",
    to: "bench@bench.test",
    headers: "",
    date: "",
    bodySize: 0,
    pipelining: false,
    starttls: false,
    auth: null,
    maildir: null,
    maildirTimeoutMs: 300_000,
    maxErrorRate: 0.001,
    stallMs: 30_000,
    json: false,
    progress: true,
  };
}
