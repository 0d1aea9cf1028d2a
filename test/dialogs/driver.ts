/**
 * The one driver of test/dialogs/*.dialog transcripts. A transcript runs over a DialogConn: the in-process
 * session tier (test/session/harness.ts, microseconds) or a socket to the real server (test/helpers/server.ts).
 *
 * Format (one directive per line; blank lines and other "#" lines are comments):
 *   # config: TOML          per-file config override lines (joined). The real server deep-merges them into its
 *                           config; the tier maps the keys of TIER_CONFIG_KEYS and refuses any other key
 *   # listener: NAME        connect to this listener (default: mx)
 *   # run: WHERE            "tier" (default): in-process only; "both": also against the real server, to keep the
 *                           real process proven; "server": only against the real server (needs what the tier
 *                           does not model: sockets, TLS bytes, the spool on disk, other connections)
 *   C: text                 send text + CRLF
 *   C+ text                 send text without CRLF
 *   C*N: text               send text + CRLF, N times
 *   S: 250                  expect one reply with this code
 *   S: 250 2.1.0            ... and this RFC 3463 enhanced code
 *   S: 250 +KW -KW          ... whose lines include (+) / lack (-) the EHLO keyword KW ("_" stands for a space)
 *   S: 530 5.7.0 | 538 5.7.11   any of the alternatives
 *   S: closed               the server closes the connection (with no further reply)
 * Escapes in C lines: <CRLF> <CR> <LF> <TAB> <NUL>, <REP n text> (text repeated n times, no escapes inside).
 * Consecutive C lines go out in ONE write (pipelined), flushed before the next S line.
 */
import { parse } from "smol-toml";
import { expect } from "vitest";
import { SmtpClient, type Srv } from "../helpers/index.ts";
import { parseReplies, sessionTier, TIER_ALIASES, type TierOptions, type TierPolicy, type TierReply } from "../session/harness.ts";

type Expect = { code: number; enhanced: string | null; plus: string[]; minus: string[] };
type Step =
  | { kind: "send"; bytes: Buffer; line: number }
  | { kind: "expect"; alts: Expect[]; text: string; line: number }
  | { kind: "closed"; line: number };

export type RunWhere = "tier" | "both" | "server";

export interface Dialog {
  name: string;
  config: string;
  listener: string;
  run: RunWhere;
  steps: Step[];
}

/** What a transcript needs of a connection, whichever side of a socket the server is on. */
export interface DialogConn {
  send(bytes: Uint8Array): Promise<void>;
  /** The next complete reply; rejects (with the reason) when none comes. */
  readReply(): Promise<{ code: number; enhanced: string | null; lines: string[]; raw: string }>;
  /** Resolves once the server has closed the connection; rejects when it stays open. */
  closed(): Promise<void>;
  /** Received and not consumed by readReply(). */
  pending(): string;
  destroy(): void;
}

function unescape(text: string): Buffer {
  const expanded = text.replace(/<REP (\d+) ([^>]*)>/g, (_m, n: string, s: string) => s.repeat(Number(n)));
  const parts: Buffer[] = [];
  const re = /<(CRLF|CR|LF|TAB|NUL)>/g;
  let last = 0;
  for (let m = re.exec(expanded); m; m = re.exec(expanded)) {
    parts.push(Buffer.from(expanded.slice(last, m.index), "utf8"));
    parts.push(Buffer.from({ CRLF: "\r\n", CR: "\r", LF: "\n", TAB: "\t", NUL: "\0" }[m[1] as "CR"], "latin1"));
    last = m.index + m[0].length;
  }
  parts.push(Buffer.from(expanded.slice(last), "utf8"));
  return Buffer.concat(parts);
}

function parseExpect(spec: string, where: string): Expect {
  const tokens = spec.trim().split(/\s+/);
  const code = Number(tokens.shift());
  if (!Number.isInteger(code) || code < 200 || code > 599) throw new Error(`${where}: bad reply code in "${spec}"`);
  let enhanced: string | null = null;
  if (tokens[0] && /^\d\.\d{1,3}\.\d{1,3}$/.test(tokens[0])) enhanced = tokens.shift()!;
  const plus: string[] = [];
  const minus: string[] = [];
  for (const t of tokens) {
    if (t.startsWith("+")) plus.push(t.slice(1).replace(/_/g, " "));
    else if (t.startsWith("-")) minus.push(t.slice(1).replace(/_/g, " "));
    else throw new Error(`${where}: unknown token "${t}"`);
  }
  return { code, enhanced, plus, minus };
}

export function parseDialog(name: string, text: string): Dialog {
  const config: string[] = [];
  let listener = "mx";
  let run: RunWhere = "tier";
  const steps: Step[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const where = `${name}:${line}`;
    let m: RegExpExecArray | null;
    if ((m = /^# config: ?(.*)$/.exec(raw))) config.push(m[1]!);
    else if ((m = /^# listener: *(\S+)\s*$/.exec(raw))) listener = m[1]!;
    else if ((m = /^# run: *(\S+)\s*$/.exec(raw))) {
      if (m[1] !== "tier" && m[1] !== "both" && m[1] !== "server") throw new Error(`${where}: # run: tier | both | server`);
      run = m[1];
    } else if (raw.trim() === "" || raw.startsWith("#")) return;
    else if ((m = /^C(?:\*(\d+))?: ?(.*)$/.exec(raw))) {
      const one = Buffer.concat([unescape(m[2]!), Buffer.from("\r\n")]);
      const bytes = m[1] ? Buffer.concat(Array.from({ length: Number(m[1]) }, () => one)) : one;
      steps.push({ kind: "send", bytes, line });
    } else if ((m = /^C\+ ?(.*)$/.exec(raw))) steps.push({ kind: "send", bytes: unescape(m[1]!), line });
    else if ((m = /^S: *closed\s*$/.exec(raw))) steps.push({ kind: "closed", line });
    else if ((m = /^S: (.*)$/.exec(raw))) {
      steps.push({ kind: "expect", alts: m[1]!.split("|").map((a) => parseExpect(a, where)), text: m[1]!, line });
    } else throw new Error(`${where}: cannot parse ${JSON.stringify(raw)}`);
  });
  return { name, config: config.join("\n"), listener, run, steps };
}

function ehloHas(lines: string[], kw: string): boolean {
  const k = kw.toUpperCase();
  return lines.some((l) => {
    const u = l.toUpperCase();
    return u === k || u.startsWith(k + " ");
  });
}

function matches(reply: { code: number; enhanced: string | null; lines: string[] }, e: Expect): boolean {
  return (
    reply.code === e.code &&
    (e.enhanced === null || reply.enhanced === e.enhanced) &&
    e.plus.every((k) => ehloHas(reply.lines, k)) &&
    !e.minus.some((k) => ehloHas(reply.lines, k))
  );
}

export async function runDialog(d: Dialog, c: DialogConn): Promise<void> {
  const pending: Buffer[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length) await c.send(Buffer.concat(pending.splice(0)));
  };
  try {
    for (const step of d.steps) {
      const where = `${d.name}.dialog:${step.line}`;
      if (step.kind === "send") {
        pending.push(step.bytes);
        continue;
      }
      await flush();
      if (step.kind === "closed") {
        await c.closed().catch(() => {
          throw new Error(`${where}: expected the server to close the connection; it stayed open`);
        });
        expect(c.pending(), `${where}: data after the last expected reply`).toBe("");
        return;
      }
      let reply: Awaited<ReturnType<DialogConn["readReply"]>>;
      try {
        reply = await c.readReply();
      } catch (err) {
        throw new Error(`${where}: expected "S: ${step.text}" but ${(err as Error).message}`);
      }
      expect(step.alts.some((a) => matches(reply, a)), `${where}: expected "S: ${step.text}", got:\n${reply.raw}`).toBe(true);
    }
    // No reply may be left unaccounted for at the end of a transcript.
    expect(c.pending(), `${d.name}.dialog: reply not covered by the transcript`).toBe("");
  } finally {
    c.destroy();
  }
}

// ---- the real server ------------------------------------------------------------------------------------------

export async function serverConn(srv: Srv, d: Dialog): Promise<DialogConn> {
  const port = srv.ports[d.listener];
  if (!port) throw new Error(`${d.name}: no listener named ${d.listener}`);
  const c = await SmtpClient.connect(port);
  return {
    send: (bytes) => c.send(bytes),
    readReply: () => c.readReply(20_000),
    closed: () => c.closed(10_000),
    pending: () => c.pending.toString("latin1"),
    destroy: () => c.destroy(),
  };
}

// ---- the in-process tier --------------------------------------------------------------------------------------

type Toml = Record<string, unknown>;

function posInt(key: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new Error(`${key}: expected a positive integer`);
  return v;
}

function strings(key: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`${key}: expected an array of strings`);
  return v;
}

/**
 * The config keys a transcript may override when it runs in-process, each mapped onto the tier's settings or
 * policy. Anything else is refused: a key the tier silently ignored would make the transcript test nothing.
 */
export const TIER_CONFIG_KEYS: Record<string, (o: TierOptions, p: TierPolicy, v: unknown) => void> = {
  hostname: (o, _p, v) => {
    if (typeof v !== "string" || v === "") throw new Error("hostname: expected a non-empty string");
    o.hostname = v;
  },
  "limits.max_message_size": (o, _p, v) => void (o.maxMessageSize = posInt("limits.max_message_size", v)),
  "limits.max_recipients": (o, _p, v) => void (o.maxRecipients = posInt("limits.max_recipients", v)),
  "limits.max_hops": (o, _p, v) => void (o.maxHops = posInt("limits.max_hops", v)),
  "limits.max_auth_failures": (o, _p, v) => void (o.maxAuthFailures = posInt("limits.max_auth_failures", v)),
  "limits.error_delay_after": (o, _p, v) => void (o.errorDelayAfter = posInt("limits.error_delay_after", v)),
  "limits.max_errors": (o, _p, v) => void (o.maxErrors = posInt("limits.max_errors", v)),
  "local.catch_all": (_o, p, v) => {
    if (typeof v !== "boolean") throw new Error("local.catch_all: expected true or false");
    p.catchAll = v;
  },
  "local.domains": (_o, p, v) => void (p.domains = strings("local.domains", v)),
  // Tables merge over the base config's (test/helpers/server.ts deepMerge), so the test aliases stay.
  "local.aliases": (_o, p, v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("local.aliases: expected a table");
    const extra = Object.fromEntries(Object.entries(v).map(([k, t]) => [k, strings(`local.aliases.${k}`, t)]));
    p.aliases = { ...TIER_ALIASES, ...p.aliases, ...extra };
  },
  "relay.networks": (_o, p, v) => void (p.relayNetworks = strings("relay.networks", v)),
};

/** Dotted keys of a TOML document; a key of TIER_CONFIG_KEYS is a leaf even when its value is a table. */
function leaves(t: Toml, prefix: string, out: Array<[string, unknown]>): Array<[string, unknown]> {
  for (const [k, v] of Object.entries(t)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "object" && v !== null && !Array.isArray(v) && !(key in TIER_CONFIG_KEYS)) leaves(v as Toml, key, out);
    else out.push([key, v]);
  }
  return out;
}

/** A transcript's `# config:` lines as tier options; throws on a key the tier cannot honour. */
export function tierOptions(d: Pick<Dialog, "name" | "config" | "listener">): TierOptions {
  const o: TierOptions = { listener: d.listener };
  const p: TierPolicy = {};
  for (const [key, value] of leaves(parse(d.config) as Toml, "", [])) {
    const apply = TIER_CONFIG_KEYS[key];
    if (apply === undefined) {
      throw new Error(`${d.name}.dialog: config key "${key}" has no in-process equivalent; add it to TIER_CONFIG_KEYS or mark the transcript "# run: server"`);
    }
    try {
      apply(o, p, value);
    } catch (err) {
      throw new Error(`${d.name}.dialog: config ${(err as Error).message}`);
    }
  }
  if (Object.keys(p).length > 0) o.policy = p;
  return o;
}

/** `bytewise`: every byte its own onData call (the hardest chunking a socket can produce). */
export function tierConn(d: Dialog, feed: "chunk" | "bytewise" = "chunk"): DialogConn {
  const t = sessionTier(tierOptions(d));
  let read = 0;
  const next = (): TierReply | undefined => {
    const r = parseReplies(t.output.slice(read)).replies[0];
    if (r) read += r.raw.length;
    return r;
  };
  return {
    async send(bytes) {
      if (feed === "bytewise") t.sendBytewise(bytes);
      else t.send(bytes);
    },
    async readReply() {
      await t.settle();
      const r = next();
      if (r) return r;
      throw new Error(t.closed ? "the connection closed before a complete reply" : "no reply: the session waits for input");
    },
    async closed() {
      await t.settle();
      if (!t.closed) throw new Error("still open");
    },
    pending: () => t.output.slice(read),
    destroy: () => t.hangUp(),
  };
}
