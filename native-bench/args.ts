/** Command-line parsing of the load run (`bun run bench -- --host … --port …`). */
import { parseArgs } from "node:util";
import { defaultLoadOptions, type LoadOptions, type SizeClass } from "./options.ts";
import { parseDuration, parseSize } from "./units.ts";

export class UsageError extends Error {}

export const LOAD_USAGE = `usage: bun run bench -- [options]
  --host H               server address (default 127.0.0.1)
  --port P               server port (default 2525)
  --connections N        concurrent sessions (default 20)
  --messages N           messages in all (default 20000; with --duration alone: unlimited)
  --size S               message size, e.g. 1KiB, 100KiB (default 1KiB)
  --size-dist S:W,...    size mix by weight, e.g. 1KiB:80,100KiB:20 (overrides --size)
  --rcpts N              recipients per message (default 1; recipient k>0 is <local>k@<domain>)
  --to ADDR              first recipient (default bench@bench.test)
  --from ADDR            envelope sender (default bench@client.test)
  --pipelining           MAIL, RCPT and DATA in one write (RFC 2920)
  --starttls             STARTTLS before sending (certificate not verified)
  --auth USER:PASS       AUTH PLAIN after EHLO
  --duration D           stop after D, e.g. 30s
  --maildir GLOB         wait until the Maildir(s) hold every accepted message; report end-to-end time
  --maildir-timeout D    give up that wait after D (default 300s)
  --max-error-rate F     exit 1 when failed/attempted exceeds F (default 0.001)
  --json                 print one JSON object instead of the summary
  --no-progress          no progress line even on a TTY
subcommands: compare [--quick], idle --connections N, flood [--garbage N --sources K --duration D] (flood --help),
  defence [--messages N] [--reps R], dkim [--messages N] [--rounds R] [--connections C] [--algos rsa,ed25519],
  checks [--messages N] [--reps R]`;

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

function size(name: string, v: string): number {
  const n = parseSize(v);
  if (n === null || n < 1) throw new UsageError(`--${name}: ${JSON.stringify(v)} is not a size (use e.g. 1KiB, 100KiB, 512)`);
  return n;
}

function duration(name: string, v: string): number {
  const n = parseDuration(v);
  if (n === null || n <= 0) throw new UsageError(`--${name}: ${JSON.stringify(v)} is not a duration (use e.g. 30s, 2m)`);
  return n;
}

export function parseSizeDist(v: string): SizeClass[] {
  const out: SizeClass[] = [];
  for (const part of v.split(",")) {
    const [s, w] = part.split(":");
    const weight = w === undefined ? 1 : Number(w);
    if (!s || !Number.isFinite(weight) || weight <= 0) {
      throw new UsageError(`--size-dist: ${JSON.stringify(part)} is not SIZE:WEIGHT (e.g. 1KiB:80)`);
    }
    out.push({ bytes: size("size-dist", s), weight });
  }
  return out;
}

function address(name: string, v: string): string {
  if (!/^[^\s<>@]+@[^\s<>@]+$/.test(v)) throw new UsageError(`--${name}: ${JSON.stringify(v)} is not an address (local@domain)`);
  return v;
}

export function parseLoadArgs(argv: string[]): LoadOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        connections: { type: "string" },
        messages: { type: "string" },
        size: { type: "string" },
        "size-dist": { type: "string" },
        rcpts: { type: "string" },
        to: { type: "string" },
        from: { type: "string" },
        pipelining: { type: "boolean" },
        starttls: { type: "boolean" },
        auth: { type: "string" },
        duration: { type: "string" },
        maildir: { type: "string" },
        "maildir-timeout": { type: "string" },
        "max-error-rate": { type: "string" },
        json: { type: "boolean" },
        "no-progress": { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const o = defaultLoadOptions();
  if (values.host !== undefined) o.host = values.host;
  o.port = int("port", values.port, 1) ?? o.port;
  if (o.port > 65535) throw new UsageError("--port: expected 1 to 65535");
  o.connections = int("connections", values.connections, 1) ?? o.connections;
  const messages = int("messages", values.messages, 1);
  if (values.duration !== undefined) o.durationMs = duration("duration", values.duration);
  o.messages = messages ?? (o.durationMs !== null ? Number.POSITIVE_INFINITY : o.messages);
  if (values["size-dist"] !== undefined) o.sizes = parseSizeDist(values["size-dist"]);
  else if (values.size !== undefined) o.sizes = [{ bytes: size("size", values.size), weight: 1 }];
  o.rcpts = int("rcpts", values.rcpts, 1) ?? o.rcpts;
  if (values.to !== undefined) o.to = address("to", values.to);
  if (values.from !== undefined) o.from = address("from", values.from);
  o.pipelining = values.pipelining === true;
  o.starttls = values.starttls === true;
  if (values.auth !== undefined) {
    const i = values.auth.indexOf(":");
    if (i <= 0) throw new UsageError("--auth: expected USER:PASS");
    o.auth = { user: values.auth.slice(0, i), pass: values.auth.slice(i + 1) };
  }
  if (values.maildir !== undefined) o.maildir = values.maildir;
  if (values["maildir-timeout"] !== undefined) o.maildirTimeoutMs = duration("maildir-timeout", values["maildir-timeout"]);
  if (values["max-error-rate"] !== undefined) {
    const f = Number(values["max-error-rate"]);
    if (!(f >= 0 && f <= 1)) throw new UsageError("--max-error-rate: expected a fraction from 0 to 1");
    o.maxErrorRate = f;
  }
  o.json = values.json === true;
  o.progress = values["no-progress"] !== true;
  return o;
}
