/**
 * The in-process session tier (ARCHITECTURE "Test tier to add"): a real Session over fake ports, driven by
 * onData calls instead of a socket, so a protocol edge case costs microseconds instead of a spawned server.
 *
 * What is real: Session, protocol/, the Policy of src/policy, and the Authenticator of src/auth with its
 * brute-force record. What is fake: the Conn (bytes in memory, STARTTLS "handshakes" without crypto), the
 * spool (messages kept in memory, a commit can be told to fail or to wait), the password hasher behind the
 * Authenticator (plain comparison: argon2id costs ~120 ms per verify, which is exactly what this tier avoids),
 * the clock, the log and the metrics (all of which record what the session did).
 *
 * The defaults mirror the base config of test/helpers/server.ts (hostname, example.test, alice and bob,
 * the aliases, max_recipients 5, max_message_size 200000), so a dialog transcript means the same here and
 * against the real server.
 */
import { Authenticator, type AuthLimits, type PasswordVerifier, type UserEntry } from "../../src/auth/index.ts";
import { hopCounterStage } from "../../src/inbound/index.ts";
import type { Envelope, MessageSink, SpoolPort, Stage } from "../../src/mail/index.ts";
import { fileDirectory } from "../../src/directory/index.ts";
import { Policy } from "../../src/policy/index.ts";
import {
  Session,
  type AuthPort,
  type Clock,
  type LogPort,
  type PolicyPort,
  type SessionDeps,
  type SessionMetrics,
  type SessionSettings,
} from "../../src/session/index.ts";
import type { Conn, TlsInfo } from "../../src/transport/types.ts";
import { HOSTNAME, USERS } from "../helpers/server.ts";

export const TIER_TLS: TlsInfo = { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" };
/** 2026-01-01T00:00:00Z: a fixed start, so Received dates are reproducible. */
export const TIER_EPOCH = Date.UTC(2026, 0, 1);

/** The aliases of the test server's base config. */
export const TIER_ALIASES: Record<string, string[]> = {
  "postmaster@example.test": ["alice@example.test"],
  "team@example.test": ["alice@example.test", "bob@example.test"],
};

/** The listeners of the test server (test/helpers/server.ts DEFAULT_LISTENERS). */
const LISTENERS = {
  mx: { tls: "starttls", auth: "optional" },
  submission: { tls: "starttls", auth: "required" },
  submissions: { tls: "implicit", auth: "required" },
} as const satisfies Record<string, Pick<SessionSettings, "tls" | "auth">>;
export type TierListener = keyof typeof LISTENERS;

export interface TierReply {
  code: number;
  /** RFC 3463 enhanced code of the first line, or null. */
  enhanced: string | null;
  /** Each line's text after "NNN-" / "NNN ". */
  lines: string[];
  /** The reply as written, CRLFs included. */
  raw: string;
}

/** The directory and policy values a tier test may set (the tier builds a file directory from them). */
export interface TierPolicy {
  domains?: string[];
  users?: string[];
  aliases?: Record<string, string[]>;
  catchAll?: boolean;
  relayNetworks?: string[];
  /** CONTRACT [srs] (default off); its timestamps follow the tier's clock. */
  srs?: { secret: string; domain: string };
}

export interface TierOptions extends Partial<SessionSettings> {
  /** limits.max_hops for the hop-counter stage (default 50, as in the config). */
  maxHops?: number;
  /** Stages after the built-in hop counter (tests of the stage contract add theirs). */
  stages?: Stage[];
  /** Preset tls/auth of a test-server listener (default mx); explicit tls/auth win over it. */
  listener?: TierListener | (string & {});
  remoteAddress?: string;
  /** Policy settings over the defaults (the users list defaults to the keys of `passwords`). */
  policy?: TierPolicy;
  /** The directory is unavailable (its snapshot is null): RCPT 451, AUTH 454. */
  directoryDown?: boolean;
  /** address → password for AUTH; default alice and bob of test/helpers USERS. */
  passwords?: Record<string, string>;
  authLimits?: AuthLimits;
  /** "succeed" (default): STARTTLS completes at once; "fail": the handshake rejects; "hold": conn.finishTls(). */
  tlsHandshake?: "succeed" | "fail" | "hold";
  /** Default true: clock.delay(ms) advances the clock by ms and resolves at once; false: only clock.advance(). */
  autoDelay?: boolean;
}

// ---- fake ports -----------------------------------------------------------------------------------------------

export class FakeConn implements Conn {
  readonly localAddress = "127.0.0.1";
  readonly localPort = 2525;
  readonly remotePort = 40000;
  tls: TlsInfo | null;
  /** Every write, in order, as the session made it (a copy: the session may reuse shared constants). */
  readonly writes: Uint8Array[] = [];
  /** Settable to test backpressure; the fake has no kernel, so it is 0 unless a test says otherwise. */
  pendingWrite = 0;
  ended = false;
  paused = false;
  readonly calls: Array<"end" | "pause" | "resume" | "startTls"> = [];
  /** Chunks sent while paused: a paused socket delivers nothing until resumed. */
  private held: Uint8Array[] = [];
  private tlsDone: ((ok: boolean) => void) | null = null;
  private closeReported = false;
  handler: { onData(c: Uint8Array): void; onClose(): void } | null = null;

  constructor(
    readonly remoteAddress: string,
    implicitTls: boolean,
    private readonly handshake: "succeed" | "fail" | "hold",
  ) {
    this.tls = implicitTls ? TIER_TLS : null;
  }

  write(bytes: Uint8Array): void {
    this.writes.push(bytes.slice());
  }

  end(): void {
    this.calls.push("end");
    if (this.ended) return;
    this.ended = true;
    // The transport reports the closed socket later, never from inside the session's own end() call.
    queueMicrotask(() => this.reportClose());
  }

  pause(): void {
    this.calls.push("pause");
    this.paused = true;
  }

  resume(): void {
    this.calls.push("resume");
    this.paused = false;
    const held = this.held;
    this.held = [];
    // Like a socket: data events resume after the call returns, not inside it.
    if (held.length > 0) queueMicrotask(() => held.forEach((c) => this.deliver(c)));
  }

  startTls(): Promise<TlsInfo> {
    this.calls.push("startTls");
    return new Promise((resolve, reject) => {
      const done = (ok: boolean): void => {
        this.tlsDone = null;
        if (!ok) return reject(new Error("handshake failed (tier)"));
        this.tls = TIER_TLS;
        resolve(TIER_TLS);
      };
      if (this.handshake === "hold") this.tlsDone = done;
      else done(this.handshake === "succeed");
    });
  }

  /** Completes a STARTTLS handshake held by tlsHandshake: "hold". */
  finishTls(ok = true): void {
    if (this.tlsDone === null) throw new Error("no STARTTLS handshake is waiting");
    this.tlsDone(ok);
  }

  /** The transport's onClose: once, whichever side closed. */
  reportClose(): void {
    this.ended = true;
    if (this.closeReported) return;
    this.closeReported = true;
    this.handler?.onClose();
  }

  /** Hands a chunk to the session as the transport would; nothing once the connection is closed. */
  deliver(chunk: Uint8Array): void {
    if (this.ended) return;
    if (this.paused) this.held.push(chunk);
    else this.handler?.onData(chunk);
  }
}

export interface CommittedMessage {
  id: string;
  envelope: Envelope;
  bytes: Uint8Array;
  /** The bytes as latin1 (one char per octet), for assertions. */
  text: string;
  /** What the stages prepended (MessageSink.commit's second argument), latin1; "" when nothing. */
  prepend: string;
}

export class MemorySpool implements SpoolPort {
  readonly messages: CommittedMessage[] = [];
  /** Ids of sinks aborted (RSET, too big, client gone). */
  readonly aborted: string[] = [];
  private seq = 0;
  private failures: Error[] = [];
  private holding = false;
  private held: Array<() => void> = [];

  /** The next commit rejects with err (the session must answer 451 and store nothing). */
  failNext(err = new Error("disk full (tier)")): void {
    this.failures.push(err);
  }

  /** Commits wait until release(): the session stays busy, so pipelined bytes pile up in its stash. */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    held.forEach((f) => f());
  }

  begin(): MessageSink {
    const id = `T${String(++this.seq).padStart(6, "0")}`;
    const chunks: Uint8Array[] = [];
    let size = 0;
    let state: "open" | "committed" | "aborted" = "open";
    const spool = this;
    return {
      id,
      get size() {
        return size;
      },
      write(bytes) {
        if (state !== "open") throw new Error(`write to a ${state} sink ${id}`);
        // MessageSink.write: the caller may reuse the bytes (the session does, for its Received field).
        chunks.push(bytes.slice());
        size += bytes.length;
      },
      commit(envelope, prepend) {
        if (state !== "open") return Promise.reject(new Error(`commit of a ${state} sink ${id}`));
        const finish = (): Promise<void> => {
          const err = spool.failures.shift();
          if (err) {
            state = "aborted";
            return Promise.reject(err);
          }
          state = "committed";
          const bytes = new Uint8Array(size);
          let off = 0;
          for (const c of chunks) {
            bytes.set(c, off);
            off += c.length;
          }
          spool.messages.push({
            id,
            envelope: structuredClone(envelope),
            bytes,
            text: latin1(bytes),
            prepend: prepend ? latin1(prepend) : "",
          });
          return Promise.resolve();
        };
        if (!spool.holding) return finish();
        return new Promise<void>((resolve, reject) => spool.held.push(() => finish().then(resolve, reject)));
      },
      abort() {
        if (state !== "open") return;
        state = "aborted";
        spool.aborted.push(id);
      },
    };
  }
}

export class ManualClock implements Clock {
  private t = TIER_EPOCH;
  private timers: Array<{ at: number; fire: () => void }> = [];
  /** Every delay() asked for, in ms. */
  readonly delays: number[] = [];

  constructor(private readonly autoDelay: boolean) {}

  now(): number {
    return this.t;
  }

  delay(ms: number): Promise<void> {
    this.delays.push(ms);
    if (this.autoDelay) {
      this.t += ms;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.timers.push({ at: this.t + ms, fire: resolve }));
  }

  /** Deferred calls not run yet (settle() waits for them). */
  deferred = 0;

  /** Clock.defer: a later turn of the real event loop. */
  defer(fn: () => void): void {
    this.deferred++;
    setImmediate(() => {
      this.deferred--;
      fn();
    });
  }

  /** Moves time forward and fires the delays that are due. */
  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    due.forEach((x) => x.fire());
  }
}

export interface LogEvent {
  level: "info" | "warn" | "error";
  event: string;
  fields: Record<string, unknown>;
}

export class RecordingLog implements LogPort {
  readonly events: LogEvent[] = [];
  info(event: string, fields: Record<string, unknown>): void {
    this.events.push({ level: "info", event, fields });
  }
  warn(event: string, fields: Record<string, unknown>): void {
    this.events.push({ level: "warn", event, fields });
  }
  error(event: string, fields: Record<string, unknown>): void {
    this.events.push({ level: "error", event, fields });
  }
  named(event: string): LogEvent[] {
    return this.events.filter((e) => e.event === event);
  }
}

export class RecordingMetrics implements SessionMetrics {
  readonly acceptedBytes: number[] = [];
  readonly rejectedCodes: string[] = [];
  readonly authResults: boolean[] = [];
  readonly tlsResults: boolean[] = [];
  accepted(_listener: string, bytes: number): void {
    this.acceptedBytes.push(bytes);
  }
  rejected(code: string): void {
    this.rejectedCodes.push(code);
  }
  auth(_listener: string, ok: boolean): void {
    this.authResults.push(ok);
  }
  tlsHandshake(_listener: string, ok: boolean): void {
    this.tlsResults.push(ok);
  }
}

/** Test passwords are kept as "plain:<password>"; this verifier compares, the Authenticator around it is real. */
const plainHasher: PasswordVerifier = {
  verify: (password, hash) => Promise.resolve(hash === `plain:${password}`),
};

// ---- construction -------------------------------------------------------------------------------------------

export interface TierPorts {
  spool: MemorySpool;
  policy: PolicyPort;
  auth: AuthPort;
  clock: ManualClock;
  log: RecordingLog;
  metrics: RecordingMetrics;
  /** The inbound stages, as app/ orders them: the hop counter first. */
  stages: Stage[];
}

/**
 * The one place SessionDeps is assembled: a new field of SessionDeps (e.g. inbound stages) is one line here.
 * `onGone` is how the harness learns that the session ended.
 */
export function sessionDeps(p: TierPorts, onGone: (s: Session) => void): SessionDeps {
  return {
    spool: p.spool,
    stages: p.stages,
    policy: p.policy,
    auth: p.auth,
    clock: p.clock,
    log: p.log,
    metrics: p.metrics,
    onGone,
  };
}

export function tierSettings(o: TierOptions = {}): SessionSettings {
  const name = o.listener ?? "mx";
  const preset = (LISTENERS as Record<string, Pick<SessionSettings, "tls" | "auth"> | undefined>)[name];
  if (preset === undefined && (o.tls === undefined || o.auth === undefined)) {
    throw new Error(`tier: listener "${name}" is not a test-server listener; give tls and auth explicitly`);
  }
  return {
    hostname: o.hostname ?? HOSTNAME,
    listener: name,
    tls: o.tls ?? preset!.tls,
    auth: o.auth ?? preset!.auth,
    maxMessageSize: o.maxMessageSize ?? 200_000,
    maxRecipients: o.maxRecipients ?? 5,
    maxAuthFailures: o.maxAuthFailures ?? 3,
    errorDelayAfter: o.errorDelayAfter ?? 10,
    maxErrors: o.maxErrors ?? 20,
    ownAuthservId: o.ownAuthservId ?? "",
  };
}

const DEFAULT_PASSWORDS: Record<string, string> = Object.fromEntries(
  Object.entries(USERS).map(([name, pw]) => [`${name}@example.test`, pw]),
);

function tierPorts(o: TierOptions): TierPorts {
  const clock = new ManualClock(o.autoDelay ?? true);
  const passwords = o.passwords ?? DEFAULT_PASSWORDS;
  const users = new Map<string, UserEntry>(
    Object.entries(passwords).map(([address, pw]) => [address.toLowerCase(), { address, hash: `plain:${pw}` }]),
  );
  const directory = fileDirectory({
    domains: o.policy?.domains ?? ["example.test"],
    users: o.policy?.users?.map((address) => ({ address, hash: "" })) ?? users.values(),
    aliases: o.policy?.aliases ?? TIER_ALIASES,
  });
  const policy = new Policy({
    directory: o.directoryDown ? { snapshot: () => null } : directory,
    catchAll: o.policy?.catchAll ?? false,
    relayNetworks: o.policy?.relayNetworks ?? [],
    ...(o.policy?.srs !== undefined ? { srs: o.policy.srs, now: () => clock.now() } : {}),
  });
  // CONTRACT defaults of auth_ip_delay_after / auth_ip_block_after / auth_ip_block.
  const limits = o.authLimits ?? { delayAfter: 3, blockAfter: 10, blockMs: 600_000 };
  const auth = new Authenticator(o.directoryDown ? { snapshot: () => null } : directory, plainHasher, limits, () => clock.now(), "plain:\u0000never");
  const maxHops = o.maxHops ?? 50;
  const stages = [hopCounterStage(() => maxHops), ...(o.stages ?? [])];
  return { spool: new MemorySpool(), policy, auth, clock, log: new RecordingLog(), metrics: new RecordingMetrics(), stages };
}

// ---- the driver ---------------------------------------------------------------------------------------------

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/;

export function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function toBytes(data: string | Uint8Array): Uint8Array {
  // A copy: the session may keep a chunk (Bun hands it a fresh buffer per data event), the caller may reuse its own.
  return typeof data === "string" ? new TextEncoder().encode(data) : data.slice();
}

/** Parses complete replies (RFC 5321 §4.2: "NNN-" continues, "NNN " or "NNN" ends) from text; returns the rest. */
export function parseReplies(text: string): { replies: TierReply[]; rest: string } {
  const replies: TierReply[] = [];
  let pos = 0;
  let start = 0;
  let lines: string[] = [];
  for (;;) {
    const nl = text.indexOf("\r\n", pos);
    if (nl < 0) break;
    const line = text.slice(pos, nl);
    pos = nl + 2;
    const m = /^(\d{3})([ -]|$)(.*)$/s.exec(line);
    if (!m) throw new Error(`malformed reply line: ${JSON.stringify(line)}`);
    lines.push(m[3]!);
    if (m[2] === "-") continue;
    const e = ENHANCED.exec(lines[0]!);
    replies.push({ code: Number(m[1]), enhanced: e ? e[1]! : null, lines, raw: text.slice(start, pos) });
    lines = [];
    start = pos;
  }
  // An unfinished (multi-line) reply stays unread until its last line arrives.
  return { replies, rest: text.slice(start) };
}

export interface Tier extends TierPorts {
  readonly session: Session;
  readonly conn: FakeConn;
  readonly settings: SessionSettings;
  /** One onData call with these bytes (a string is sent as UTF-8). */
  send(data: string | Uint8Array): void;
  /** One onData call per byte. */
  sendBytewise(data: string | Uint8Array): void;
  /** One onData call per size in turn; what the sizes leave over goes in a last call. */
  sendChunked(data: string | Uint8Array, sizes: number[]): void;
  /** Lets every pending promise run, so busy phases (commit, AUTH, STARTTLS) complete. */
  settle(): Promise<void>;
  /** Complete replies written since the last call. */
  replies(): TierReply[];
  /** Everything the session wrote, as latin1. */
  readonly output: string;
  /** The client hangs up (the transport's onClose). */
  hangUp(): void;
  /** The connection is closed (the session's conn.end(), or hangUp()). */
  readonly closed: boolean;
  /** The session told its owner it is over (SessionDeps.onGone). */
  readonly gone: boolean;
  readonly messages: CommittedMessage[];
}

/** Builds a session on fake ports and sends the greeting (as app/ does on accept). */
export function sessionTier(o: TierOptions = {}): Tier {
  const settings = tierSettings(o);
  const ports = tierPorts(o);
  const conn = new FakeConn(o.remoteAddress ?? "127.0.0.1", settings.tls === "implicit", o.tlsHandshake ?? "succeed");
  let gone = false;
  const session = new Session(conn, settings, sessionDeps(ports, () => (gone = true)));
  conn.handler = session;
  session.start();
  let readUpTo = 0;
  let carry = "";
  const tier: Tier = {
    ...ports,
    session,
    conn,
    settings,
    send: (data) => conn.deliver(toBytes(data)),
    sendBytewise(data) {
      const b = toBytes(data);
      for (let i = 0; i < b.length; i++) conn.deliver(b.slice(i, i + 1));
    },
    sendChunked(data, sizes) {
      const b = toBytes(data);
      let pos = 0;
      for (const n of sizes) {
        if (pos >= b.length) break;
        conn.deliver(b.slice(pos, pos + n));
        pos += n;
      }
      if (pos < b.length) conn.deliver(b.slice(pos));
    },
    async settle() {
      // Every fake port resolves through promise jobs (or queueMicrotask), and a macrotask runs only once all of
      // them, and the chains they start (commit → next pipelined command → commit), are done. setImmediate, not
      // setTimeout: the latter costs about a millisecond per turn.
      // A session that had its share of bytes for one turn goes on in a later one (Clock.defer): wait for those.
      do await new Promise<void>((r) => setImmediate(r));
      while (ports.clock.deferred > 0);
    },
    replies() {
      const fresh = conn.writes.slice(readUpTo);
      readUpTo = conn.writes.length;
      const r = parseReplies(carry + fresh.map(latin1).join(""));
      carry = r.rest;
      return r.replies;
    },
    get output() {
      return conn.writes.map(latin1).join("");
    },
    hangUp: () => conn.reportClose(),
    get closed() {
      return conn.ended;
    },
    get gone() {
      return gone;
    },
    get messages() {
      return ports.spool.messages;
    },
  };
  return tier;
}
