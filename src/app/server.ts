/**
 * The composition root: config → certificates → users/policy/auth → listeners (connections.ts: sessions and
 * connection limits) → back office (back-office.ts: spool, delivery, DSNs, recovery), plus the metrics endpoint,
 * SIGHUP reload and SIGTERM drain. Wiring only; the only module that knows every concrete type.
 */
import { readFileSync } from "node:fs";
import { Authenticator, type AuthLimits } from "../auth/index.ts";
import { loadKeyring, type DkimKeyring } from "../dkim/index.ts";
import { ensureCertificate } from "../certs/index.ts";
import { SharedAuthFailures, SharedLimits } from "../directory/index.ts";
import { splitHostPort, type Config, type ConfigResult, type ListenerConfig } from "../config/index.ts";
import type { Stage } from "../mail/index.ts";
import { serveObserve, type Logger } from "../observe/index.ts";
import { Policy } from "../policy/index.ts";
import type { Spool } from "../queue/index.ts";
import { passwordHasher } from "../runtime/index.ts";
import type { Listener, ListenerSpec, TlsOptions, Transport } from "../transport/types.ts";
import { startBackOffice } from "./back-office.ts";
import { buildStages } from "./stages.ts";
import { openDirectory, reloadDirectory } from "./directory.ts";
import { Connections } from "./connections.ts";
import { dropPrivileges } from "./privileges.ts";
import { serverMetrics } from "./metrics.ts";
import { proxyPreface } from "./proxy-preface.ts";
import { queueStats } from "./queue-stats.ts";

export interface ServerOptions {
  transport: Transport;
  log: Logger;
  /** Re-read the config for SIGHUP (the same source the server started from). */
  reloadConfig?: () => ConfigResult;
  /**
   * The DKIM keys of config.dkim.selectors, when the caller already read them (serve and check-config do, to
   * report a bad key as a config error); else they are read here and a bad key throws.
   */
  dkimKeyring?: DkimKeyring;
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

function authLimits(c: Config): AuthLimits {
  return {
    delayAfter: c.limits.authIpDelayAfter,
    blockAfter: c.limits.authIpBlockAfter,
    blockMs: c.limits.authIpBlockMs,
  };
}

function readTls(c: Config): TlsOptions {
  return { cert: readFileSync(c.tls.cert, "utf8"), key: readFileSync(c.tls.key, "utf8") };
}

/** The keys of config.dkim.selectors; a bad key throws with the config error lines. */
function keyringOrThrow(c: Config): DkimKeyring {
  const k = loadKeyring(c.dataDir, c.dkim.selectors);
  if (!k.ok) throw new Error(k.errors.map((e) => `config error: ${e}`).join("\n"));
  return k.keyring;
}

export async function startServer(initial: Config, opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log;
  let config = initial;

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
    new Policy({ directory, catchAll: c.local.catchAll, relayNetworks: c.relay.networks, srs: c.srs });
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
  // ... and its rate limits and greylisting (CONTRACT: per node unless kind = "postgres").
  const sharedLimits = config.directory.kind === "postgres" ? new SharedLimits({ url: config.directory.url, log }) : null;

  const stats = queueStats();
  let ringDepth = (): number => 0;
  const metrics = serverMetrics(stats, () => ringDepth());

  let spool: Spool | null = null;
  const inbound = buildStages({
    config: () => config,
    policy: () => policy,
    log,
    defenceReject: metrics.defenceReject,
    dkimSigned: metrics.dkimSigned,
    authCheck: metrics.authCheck,
    localDomains: () => directory.snapshot()?.domains ?? null,
    // CONTRACT "DKIM": a missing or unreadable key is a config error at start (and on SIGHUP, below).
    keyring: opts.dkimKeyring ?? keyringOrThrow(config),
    extra: opts.extraStages ?? [],
    fleet: sharedLimits,
  });
  const connections = new Connections({
    config: () => config,
    policy: () => policy,
    auth,
    stages: () => inbound.stages,
    spool: () => spool,
    log,
    metrics,
  });
  const factory = connections.factory;
  const tlsSource = (): TlsOptions | null => tls;

  const listeners: Listener[] = [];
  const specOf = (lc: ListenerConfig): ListenerSpec => ({
    name: lc.name,
    host: lc.host,
    port: lc.port,
    implicitTls: lc.tls === "implicit",
    backlog: BACKLOG,
    // PROXY protocol: read before the session exists, so the factory below already sees the client's address.
    ...(lc.proxyProtocol
      ? { preface: proxyPreface(lc.name, () => (config.listeners.find((l) => l.name === lc.name) ?? lc).proxyFrom, log) }
      : {}),
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
    await sharedLimits?.close();
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

  // The back office (as the unprivileged user from here on): spool, delivery, DSNs, recovery.
  inbound.start();
  const office = await startBackOffice({
    config: () => config,
    policy: () => policy,
    log,
    stats,
    metrics,
    dsnSigner: () => inbound.dsnSigner(),
  });
  // DSNs that waited for an unavailable directory go out when it answers again.
  directory.onChange(() => office.directoryChanged());
  spool = office.spool;
  const pool = office.pool;
  ringDepth = () => pool.depth;

  // Idle sweeper (CONTRACT: 421 4.4.2 after idle_timeout_s; slowloris counts as idle outside DATA).
  const sweeper = setInterval(() => connections.sweepIdle(Date.now()), 1000);

  let metricsServer: Awaited<ReturnType<typeof serveObserve>> | null = null;
  if (config.metrics.listen !== "") {
    const hp = splitHostPort(config.metrics.listen, true)!;
    metricsServer = await serveObserve(hp.host, hp.port, {
      metrics: () => metrics.registry.render(),
      health: () =>
        connections.isDraining
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
        const k = loadKeyring(next.dataDir, next.dkim.selectors);
        if (!k.ok) {
          log.error("config.reload_failed", { errors: k.errors, note: "keeping the running config" });
          return false;
        }
        const nextTls = next.listeners.some((l) => l.tls !== "none") ? readTls(next) : null;
        const certChanged = nextTls?.cert !== tls?.cert || nextTls?.key !== tls?.key;
        const same = (a: ListenerConfig[], b: ListenerConfig[]): boolean =>
          a.length === b.length &&
          a.every((l, i) => l.host === b[i]!.host && l.port === b[i]!.port && l.tls === b[i]!.tls && l.proxyProtocol === b[i]!.proxyProtocol);
        if (!same(config.listeners, next.listeners)) {
          log.warn("config.listeners_changed", { note: "listener addresses, TLS modes and proxy_protocol apply at the next restart" });
        }
        reloadDirectory(directory, config, next, log);
        office.reload(next);
        inbound.reload(next, k.keyring);
        policy = policyOf(next);
        auth.update(authLimits(next));
        connections.setConnectionRate(next.limits.maxConnectionRatePerIp);
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
      if (connections.isDraining) return;
      log.info("server.stopping", { open: connections.sessions.size });
      connections.stopAccepting();
      for (const l of listeners) l.stop();
      await connections.drain(DRAIN_MS);
      clearInterval(sweeper);
      inbound.stop();
      metricsServer?.close();
      await office.stop();
      await directory.close();
      await sharedFailures?.close();
      await sharedLimits?.close();
      log.info("server.stopped", {});
    },
  };
}
