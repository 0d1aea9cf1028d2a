/**
 * The composition root: config → certificates → users/policy/auth → spool → delivery pool → listeners →
 * sessions, plus the idle sweeper, metrics endpoint, SIGHUP reload and SIGTERM drain. The only module that
 * knows every concrete type.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Authenticator, loadUsers, type AuthLimits } from "../auth/index.ts";
import { ensureCertificate } from "../certs/index.ts";
import { FileDirectory, PostgresDirectory, SharedAuthFailures, type Directory } from "../directory/index.ts";
import { splitHostPort, type Config, type ConfigResult, type ListenerConfig } from "../config/index.ts";
import {
  DeliveryPool,
  RFC5321_TIMEOUTS,
  type DeliveryResult,
  type DsnAction,
  type EnvelopeRecipient,
  type RemoteSettings,
} from "../delivery/index.ts";
import { Registry, Counter, GaugeFn, Histogram, serveObserve, type Logger } from "../observe/index.ts";
import { hopCounterStage } from "../inbound/index.ts";
import type { Stage } from "../mail/index.ts";
import { Policy } from "../policy/index.ts";
import { deleteItem, dsnChunks, isFinal, openStored, recover, Spool, type DsnRecipient } from "../queue/index.ts";
import { passwordHasher, runtimeName } from "../runtime/index.ts";
import { Session, type SessionMetrics, type SessionSettings } from "../session/index.ts";
import type { Conn, ConnHandler, Listener, ListenerSpec, TlsOptions, Transport } from "../transport/types.ts";
import { dropPrivileges } from "./privileges.ts";
import { queueStats } from "./queue-stats.ts";

export interface ServerOptions {
  transport: Transport;
  log: Logger;
  /** Re-read the config for SIGHUP (the same source the server started from). */
  reloadConfig?: () => ConfigResult;
  /** Inbound stages run after the built-in ones (embedding and tests add theirs here). */
  extraStages?: ReadonlyArray<Stage>;
}

export interface RunningServer {
  readonly listeners: ReadonlyArray<Listener>;
  /** SIGHUP: re-read config, users, certificate; keep the old on any error. */
  reload(): Promise<boolean>;
  /** SIGTERM: drain and stop. Resolves when everything is closed. */
  shutdown(): Promise<void>;
  /** `queue flush` (SIGUSR1): retry deferred items now. */
  flushQueue(): void;
}

/** CONTRACT: the listen backlog is at least 1024 (Bun's listen uses the kernel's somaxconn, 4096 here). */
const BACKLOG = 1024;
const DRAIN_MS = 5000;
/** Dummy argon2id hash verified for unknown users so that timing does not reveal which users exist. */
let dummyHash: string | null = null;

const NOOP_HANDLER: ConnHandler = { onData() {}, onDrain() {}, onClose() {} };

function sessionSettings(c: Config, l: ListenerConfig): SessionSettings {
  return {
    hostname: c.hostname,
    listener: l.name,
    tls: l.tls,
    auth: l.auth,
    maxMessageSize: c.limits.maxMessageSize,
    maxRecipients: c.limits.maxRecipients,
    maxAuthFailures: c.limits.maxAuthFailures,
  };
}

function authLimits(c: Config): AuthLimits {
  return {
    delayAfter: c.limits.authIpDelayAfter,
    blockAfter: c.limits.authIpBlockAfter,
    blockMs: c.limits.authIpBlockMs,
  };
}

/** What the remote courier needs from the config (plain data: it is posted to the delivery workers). */
function remoteSettings(c: Config): RemoteSettings {
  return {
    hostname: c.hostname,
    routes: c.relay.routes,
    smarthost: c.relay.smarthost,
    smarthostTls: c.relay.smarthostTls,
    smarthostUser: c.relay.smarthostUser,
    smarthostPassword: c.relay.smarthostPassword,
    smarthostCa: c.relay.smarthostCa === "" ? "" : readFileSync(c.relay.smarthostCa, "utf8"),
    mxPort: c.relay.mxPort,
    dnsServers: c.dns.servers,
    // RFC 5321 §4.5.3.2 values; there is no config key for them (tests of the client shorten them directly).
    timeouts: RFC5321_TIMEOUTS,
  };
}

/** RFC 3461 §4.1: no NOTIFY = FAILURE,DELAY. */
const notifyOf = (r: EnvelopeRecipient): string[] => r.notify ?? ["FAILURE", "DELAY"];

function readTls(c: Config): TlsOptions {
  return { cert: readFileSync(c.tls.cert, "utf8"), key: readFileSync(c.tls.key, "utf8") };
}

/** A DSN cannot be routed now: the directory is unavailable (the item waits in the spool). */
class DsnWaits extends Error {
  constructor() {
    super("the directory is unavailable: the DSN waits for it");
  }
}

/** The file/config source's lists. */
function fileLists(c: Config, users: Iterable<{ address: string; hash: string }>) {
  return { domains: c.local.domains, users, aliases: Object.entries(c.local.aliases) };
}

/**
 * [directory]: the file/config source, or PostgreSQL (then local.domains, users_file and [local.aliases] are
 * ignored, said once at start). A database that is down at start does not stop the server: RCPT and AUTH
 * answer 451/454 until it answers.
 */
async function openDirectory(c: Config, log: Logger): Promise<Directory> {
  if (c.directory.kind === "postgres") {
    const ignored = [
      ...(c.local.domains.length > 0 ? ["local.domains"] : []),
      ...(c.local.usersFile !== "" ? ["local.users_file"] : []),
      ...(Object.keys(c.local.aliases).length > 0 ? ["local.aliases"] : []),
    ];
    if (ignored.length > 0) log.warn("directory.ignored_keys", { keys: ignored, note: 'ignored: [directory] kind = "postgres"' });
    const d = await PostgresDirectory.open({ url: c.directory.url, log });
    if (d.snapshot() === null) log.warn("directory.not_loaded", { note: "RCPT answers 451 and AUTH 454 until the database answers" });
    return d;
  }
  const users = loadUsers(c.local.usersFile);
  for (const e of users.errors) log.warn("users.bad_line", { file: c.local.usersFile, problem: e });
  return new FileDirectory(fileLists(c, users.users.values()));
}

export async function startServer(initial: Config, opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log;
  let config = initial;
  const queueDir = join(config.dataDir, "queue");
  const mailDir = join(config.dataDir, "mail");

  // TLS: generate a self-signed pair on first start when the configured files are absent.
  const needsTls = config.listeners.some((l) => l.tls !== "none");
  let tls: TlsOptions | null = null;
  let certGenerated = false;
  if (needsTls) {
    if (await ensureCertificate(config.hostname, config.tls.cert, config.tls.key)) {
      certGenerated = true;
      log.warn("tls.generated", { cert: config.tls.cert, key: config.tls.key, note: "self-signed; replace it" });
    }
    tls = readTls(config);
  }

  // Directory (domains, users, aliases), policy, authentication.
  const hasher = passwordHasher();
  dummyHash ??= await hasher.hash("ringmta-dummy-password");
  const directory = await openDirectory(config, log);
  const policyOf = (c: Config): Policy =>
    new Policy({ directory, catchAll: c.local.catchAll, relayNetworks: c.relay.networks });
  let policy = policyOf(config);
  // A fleet on one database shares the AUTH brute-force records through it, too.
  const sharedFailures =
    config.directory.kind === "postgres"
      ? new SharedAuthFailures({
          url: config.directory.url,
          log,
          threshold: () => Math.min(config.limits.authIpDelayAfter, config.limits.authIpBlockAfter - 1),
        })
      : null;
  const auth = new Authenticator(directory, hasher, authLimits(config), Date.now, dummyHash, sharedFailures);

  // Metrics (CONTRACT: at least these families).
  const registry = new Registry();
  const mConnTotal = registry.add(new Counter("ringmta_connections_total", "Connections accepted, by listener."));
  const mConnOpen = registry.add(new Counter("ringmta_connections_open", "Connections open now, by listener.", true));
  const mAccepted = registry.add(new Counter("ringmta_messages_accepted_total", "Messages accepted (250 after data)."));
  const mBytes = registry.add(new Counter("ringmta_received_bytes_total", "Message bytes accepted, by listener."));
  const mRejected = registry.add(new Counter("ringmta_messages_rejected_total", "Rejecting replies, by code."));
  const mAuth = registry.add(new Counter("ringmta_auth_total", "AUTH attempts, by listener and result."));
  const mTls = registry.add(new Counter("ringmta_tls_handshakes_total", "TLS handshakes (STARTTLS and implicit), by listener and result."));
  const mDeliveries = registry.add(new Counter("ringmta_deliveries_total", "Delivery attempts, by courier and outcome."));
  const mDeliveryLatency = registry.add(
    new Histogram("ringmta_delivery_seconds", "From acceptance to delivery.", [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 60, 600, 3600]),
  );
  const mFsync = registry.add(
    new Histogram("ringmta_spool_commit_seconds", "Spool group-commit rounds (write, fsync, rename, directory fsync).", [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1]),
  );
  const stats = queueStats();
  registry.add(new GaugeFn("ringmta_queue_messages", "Messages in the spool.", () => stats.count));
  registry.add(new GaugeFn("ringmta_ring_depth", "Message ids waiting in the ring for a delivery worker.", () => pool.depth));
  registry.add(new GaugeFn("ringmta_queue_oldest_seconds", "Age of the oldest message in the spool.", () => stats.oldestSeconds()));

  const sessionMetrics: SessionMetrics = {
    accepted: (listener, bytes) => {
      mAccepted.inc({ listener });
      mBytes.inc({ listener }, bytes);
    },
    rejected: (code) => mRejected.inc({ code }),
    auth: (listener, ok) => mAuth.inc({ listener, result: ok ? "success" : "failure" }),
    tlsHandshake: (listener, ok) => mTls.inc({ listener, result: ok ? "success" : "failure" }),
  };

  let spool: Spool | null = null;
  // Sessions and connection limits (CONTRACT: counted over all listeners).
  const sessions = new Set<Session>();
  const perIp = new Map<string, number>();
  let total = 0;
  let draining = false;
  const clock = { now: Date.now, delay: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
  const tlsSource = (): TlsOptions | null => tls;
  // The inbound stages, in order: loop detection first (it reads limits.max_hops at each message, so SIGHUP applies).
  const stages: Stage[] = [hopCounterStage(() => config.limits.maxHops), ...(opts.extraStages ?? [])];

  const factory = (conn: Conn, spec: ListenerSpec): ConnHandler => {
    // The listener's current settings (SIGHUP may have changed its auth mode or the limits).
    const lc = config.listeners.find((l) => l.name === spec.name)!;
    const ip = conn.remoteAddress;
    const lim = config.limits;
    if (spool === null) {
      // Between binding and the spool being open (start-up): nothing could be stored yet.
      conn.write(new TextEncoder().encode("421 4.3.0 Server starting, try again\r\n"));
      conn.end();
      return NOOP_HANDLER;
    }
    if (draining || total >= lim.maxConnections || (perIp.get(ip) ?? 0) >= lim.maxConnectionsPerIp) {
      mRejected.inc({ code: "421" });
      conn.write(new TextEncoder().encode(draining ? "421 4.3.2 Server shutting down\r\n" : "421 4.7.0 Too many connections, try later\r\n"));
      conn.end();
      return NOOP_HANDLER;
    }
    total++;
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    mConnTotal.inc({ listener: spec.name });
    if (spec.implicitTls) mTls.inc({ listener: spec.name, result: "success" });
    mConnOpen.inc({ listener: spec.name });
    const session = new Session(conn, sessionSettings(config, lc), {
      spool: spool,
      stages,
      policy,
      auth,
      clock,
      log,
      metrics: sessionMetrics,
      onGone: (s) => {
        sessions.delete(s);
        total--;
        const n = (perIp.get(ip) ?? 1) - 1;
        if (n <= 0) perIp.delete(ip);
        else perIp.set(ip, n);
        mConnOpen.inc({ listener: spec.name }, -1);
      },
    });
    sessions.add(session);
    session.start();
    return session;
  };

  const listeners: Listener[] = [];
  const specOf = (lc: ListenerConfig): ListenerSpec => ({
    name: lc.name,
    host: lc.host,
    port: lc.port,
    implicitTls: lc.tls === "implicit",
    backlog: BACKLOG,
  });
  try {
    for (const lc of config.listeners) {
      const l = await opts.transport.listen(specOf(lc), tlsSource, factory);
      listeners.push(l);
      log.info("listener.up", { name: lc.name, host: lc.host, port: l.port, tls: lc.tls, auth: lc.auth });
    }
  } catch (e) {
    for (const l of listeners) l.stop();
    await directory.close();
    await sharedFailures?.close();
    throw e;
  }

  // CONTRACT: started as root with [server] user, bind first, then become that user before touching the spool,
  // the Maildirs or starting workers.
  dropPrivileges(config.server.user, [config.dataDir, ...(certGenerated ? [config.tls.cert, config.tls.key] : [])], log);

  /**
   * A Bun TLS listener keeps the certificate it was created with, so on a certificate change each implicit-TLS
   * listener is replaced: the new one binds the same port (SO_REUSEPORT) before the old one stops accepting.
   * Open connections of the old listener stay up. STARTTLS reads the current certificate at each upgrade.
   */
  const rebindImplicit = async (): Promise<void> => {
    for (let i = 0; i < listeners.length; i++) {
      const old = listeners[i]!;
      if (!old.spec.implicitTls) continue;
      const fresh = await opts.transport.listen({ ...old.spec, port: old.port }, tlsSource, factory);
      old.stop();
      listeners[i] = fresh;
      log.info("listener.rebound", { name: old.spec.name, port: fresh.port, reason: "certificate reloaded" });
    }
  };

  // Delivery (as the unprivileged user from here on).
  mkdirSync(queueDir, { recursive: true, mode: 0o700 });
  mkdirSync(mailDir, { recursive: true, mode: 0o700 });
  /**
   * Inject the DSN for `notices` of item `id` (null: a finished item found at start, whose state says what to
   * report) through the spool: envelope sender <>, to the original sender, routed like any recipient (a local
   * sender's DSN lands in its Maildir, a remote one is relayed). Never to <>.
   */
  const sendDsn = async (id: string, notices: Array<{ index: number; action: DsnAction }> | null): Promise<void> => {
    const item = openStored(queueDir, id);
    if (item === null || spool === null) return;
    const env = item.envelope;
    if (env.sender === "") return;
    const list =
      notices ??
      env.recipients.flatMap((r, index): Array<{ index: number; action: DsnAction }> => {
        const st = item.state[index];
        const n = notifyOf(r);
        if (n.includes("NEVER") || !isFinal(st)) return [];
        if (st.status === "failed") return n.includes("FAILURE") ? [{ index, action: "failed" }] : [];
        if (!n.includes("SUCCESS") || (st.remoteMta !== undefined && !st.relayed)) return [];
        return [{ index, action: st.relayed ? "relayed" : "delivered" }];
      });
    if (list.length === 0) return;
    const now = Date.now();
    const recipients: DsnRecipient[] = list.map(({ index, action }) => {
      const r = env.recipients[index];
      const st = item.state[index];
      return {
        address: r.address,
        ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}),
        action,
        reply: st.lastReply,
        ...(st.remoteMta !== undefined ? { remoteMta: st.remoteMta } : {}),
        lastAttempt: now,
        ...(action === "delayed" ? { willRetryUntil: env.arrival + config.queue.maxAgeMs } : {}),
      };
    });
    const at = env.sender.lastIndexOf("@");
    const decision = policy.recipient(at < 0 ? env.sender : env.sender.slice(0, at), at < 0 ? "" : env.sender.slice(at + 1), {
      clientAddress: "127.0.0.1",
      authUser: `MAILER-DAEMON@${config.hostname}`, // our own notice may go anywhere (relay permission)
    });
    // The directory is down: the item stays in the spool and the DSN waits for the directory (dsnWaiting).
    if (decision.kind === "tempfail") throw new DsnWaits();
    if (decision.kind !== "accept") {
      log.warn("dsn.undeliverable", { id, sender: env.sender, reason: decision.kind });
      return;
    }
    const sink = spool.begin();
    try {
      for (const c of dsnChunks({ hostname: config.hostname, dsnId: sink.id, envelope: env, recipients, chunks: () => item.message.chunks(), now })) {
        sink.write(c);
      }
      await sink.commit({
        sender: "",
        recipients: decision.targets.map((t) => ({ rcpt: env.sender, address: t.address, route: t.route })),
        body: "8BITMIME",
        smtputf8: /[^\x00-\x7f]/.test(env.sender),
        client: { address: "127.0.0.1", helo: config.hostname, listener: "dsn" },
        arrival: 0,
      });
    } catch (err) {
      sink.abort();
      throw err;
    }
    log.info("dsn.queued", { id: sink.id, about: id, to: env.sender, actions: list.map((n) => n.action) });
  };

  /**
   * DSNs whose routing met an unavailable directory (kind = "postgres" and the database down): sent when the
   * directory is back; a finished item is deleted once its DSN is in the spool.
   */
  const dsnWaiting = new Map<string, { notices: Array<{ index: number; action: DsnAction }>; remove: boolean }>();
  const sendWaitingDsns = async (): Promise<void> => {
    for (const [id, w] of [...dsnWaiting]) {
      if (directory.snapshot() === null) return;
      try {
        await sendDsn(id, w.notices);
        dsnWaiting.delete(id);
        if (w.remove) deleteItem(queueDir, id);
        log.info("dsn.sent_after_directory_outage", { id });
      } catch (err) {
        if (!(err instanceof DsnWaits)) {
          dsnWaiting.delete(id);
          log.error("dsn.failed", { id, error: String(err) });
        }
      }
    }
  };
  directory.onChange(() => {
    if (dsnWaiting.size > 0) void sendWaitingDsns();
  });

  const pool = new DeliveryPool({
    // One entry per runtime: a worker must import its Dialer statically (see delivery-worker.ts), and the Bun
    // adapter loads bun:ffi, which Deno cannot.
    workerUrl:
      runtimeName() === "bun"
        ? new URL("./delivery-worker.ts", import.meta.url)
        : new URL("./delivery-worker-deno.ts", import.meta.url),
    workers: config.delivery.workers,
    queueDir,
    mailDir,
    hostname: config.hostname,
    retryIntervalsMs: config.queue.retryIntervalsMs,
    maxAgeMs: config.queue.maxAgeMs,
    delayWarningMs: config.queue.delayWarningMs,
    remote: remoteSettings(config),
    log,
    onFinished: async (r: DeliveryResult) => {
      try {
        await sendDsn(r.id, r.notices);
      } catch (e) {
        // Rethrown either way: the pool then keeps the item (a final one is bounced and deleted below, or at the
        // next start at the latest).
        if (e instanceof DsnWaits) dsnWaiting.set(r.id, { notices: r.notices, remove: r.done });
        throw e;
      }
    },
    onReleased: (ref: string) => spool?.release(ref),
    onResult: (r: DeliveryResult) => {
      for (const o of r.outcomes) {
        mDeliveries.inc({ courier: o.courier, outcome: o.outcome.kind });
        log.info("delivery.attempt", {
          id: r.id,
          index: o.index,
          recipient: o.address,
          courier: o.courier,
          outcome: o.outcome.kind,
          remote: o.outcome.remoteMta,
          reply: o.outcome.reply,
          duration_ms: o.ms,
        });
      }
      if (r.error) log.warn("delivery.error", { id: r.id, error: r.error });
      if (r.done) {
        const arrival = stats.remove(r.id);
        if (arrival !== undefined) mDeliveryLatency.observe((Date.now() - arrival) / 1000);
        log.info("queue.done", { id: r.id });
      }
    },
  });
  spool = new Spool({
    dir: queueDir,
    onRound: (ms) => mFsync.observe(ms / 1000),
    onCommitted: (c) => {
      stats.add(c.id, c.envelope.arrival);
      pool.enqueue(c.ref);
    },
  });
  const recovered = recover(queueDir, log);
  await pool.start();
  const startedAt = Date.now();
  for (const item of recovered.items) {
    stats.add(item.id, item.envelope.arrival);
    // The retry schedule is in the state log: a deferred item waits for its next attempt, also across a restart.
    let next = 0;
    let now = false;
    item.state.forEach((st) => {
      if (st.status === "queued") now = true;
      else if (st.status === "deferred") next = next === 0 ? st.nextAttempt : Math.min(next, st.nextAttempt);
    });
    if (now || next <= startedAt) pool.enqueue(item.id, true);
    else pool.schedule(item.id, next);
  }
  // Finished with failures but not yet bounced when the last run stopped: bounce now, then remove.
  for (const item of recovered.finished) {
    try {
      await sendDsn(item.id, null);
      deleteItem(queueDir, item.id);
    } catch (err) {
      log.error("dsn.failed", { id: item.id, error: String(err) });
    }
  }
  if (recovered.items.length || recovered.removed.length || recovered.corrupt.length || recovered.fromSegments) {
    log.info("queue.recovered", {
      pending: recovered.items.length,
      removed: recovered.removed.length,
      corrupt: recovered.corrupt.length,
      from_segments: recovered.fromSegments,
    });
  }

  // Idle sweeper (CONTRACT: 421 4.4.2 after idle_timeout_s; slowloris counts as idle outside DATA).
  const sweeper = setInterval(() => {
    const now = Date.now();
    const idleMs = config.limits.idleTimeoutS * 1000;
    for (const s of sessions) s.checkIdle(now, idleMs);
  }, 1000);

  let metricsServer: Awaited<ReturnType<typeof serveObserve>> | null = null;
  if (config.metrics.listen !== "") {
    const hp = splitHostPort(config.metrics.listen, true)!;
    metricsServer = await serveObserve(hp.host, hp.port, {
      metrics: () => registry.render(),
      health: () =>
        draining
          ? { ok: false, reason: "shutting down" }
          : !pool.healthy()
            ? { ok: false, reason: "delivery workers down" }
            : { ok: true },
    });
    log.info("metrics.up", { listen: config.metrics.listen });
  }

  return {
    listeners,
    flushQueue: () => pool.flushScheduled(),
    async reload(): Promise<boolean> {
      if (!opts.reloadConfig) return false;
      const r = opts.reloadConfig();
      if (!r.ok) {
        log.error("config.reload_failed", { errors: r.errors, note: "keeping the running config" });
        return false;
      }
      try {
        const next = r.config;
        const u = directory instanceof FileDirectory ? loadUsers(next.local.usersFile) : null;
        const nextTls = next.listeners.some((l) => l.tls !== "none") ? readTls(next) : null;
        const certChanged = nextTls?.cert !== tls?.cert || nextTls?.key !== tls?.key;
        const same = (a: ListenerConfig[], b: ListenerConfig[]): boolean =>
          a.length === b.length && a.every((l, i) => l.host === b[i]!.host && l.port === b[i]!.port && l.tls === b[i]!.tls);
        if (!same(config.listeners, next.listeners)) {
          log.warn("config.listeners_changed", { note: "listener addresses apply at the next restart" });
        }
        if (next.directory.kind !== directory.kind || next.directory.url !== config.directory.url) {
          log.warn("config.directory_changed", { note: "[directory] applies at the next restart" });
        }
        const nextRemote = remoteSettings(next);
        if (u !== null && directory instanceof FileDirectory) {
          for (const e of u.errors) log.warn("users.bad_line", { file: next.local.usersFile, problem: e });
          directory.replace(fileLists(next, u.users.values()));
        }
        policy = policyOf(next);
        pool.updateRemote(nextRemote);
        auth.update(authLimits(next));
        tls = nextTls;
        // Listener addresses stay as bound; their tls/auth settings and limits apply to new connections.
        config = { ...next, listeners: config.listeners.map((l) => next.listeners.find((n) => n.name === l.name) ?? l) };
        if (certChanged && !opts.transport.tlsPerConnection) await rebindImplicit();
        const view = directory.snapshot();
        log.info("config.reloaded", { users: view?.users.size, domains: view === null ? undefined : [...view.domains] });
        return true;
      } catch (e) {
        log.error("config.reload_failed", { error: String(e), note: "keeping the running config" });
        return false;
      }
    },
    async shutdown(): Promise<void> {
      if (draining) return;
      draining = true;
      log.info("server.stopping", { open: sessions.size });
      for (const l of listeners) l.stop();
      for (const s of [...sessions]) s.shutdown(false);
      const deadline = Date.now() + DRAIN_MS;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const s of [...sessions]) s.shutdown(true);
      clearInterval(sweeper);
      metricsServer?.close();
      await spool?.close();
      await pool.stop();
      await directory.close();
      await sharedFailures?.close();
      log.info("server.stopped", {});
    },
  };
}
