/**
 * The back office as the composition root connects it: spool → delivery pool (workers, couriers) → notifier
 * (our DSNs) → recovery of what the last run left. Wiring only: what is retried, reported or recovered is decided
 * in queue/, how mail is delivered in delivery/. Started after the listeners are bound and privileges dropped.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import { DeliveryPool, RFC5321_TIMEOUTS, resultReporter, TlsRptLog, TlsRptSender, type RemoteSettings } from "../delivery/index.ts";
import { Resolver } from "../dns/index.ts";
import type { Logger } from "../observe/index.ts";
import type { Policy } from "../policy/index.ts";
import { Notifier, recover, resumeRecovered, Spool, type DsnSigner } from "../queue/index.ts";
import { runtimeName } from "../runtime/index.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { QueueStats } from "./queue-stats.ts";

/** What the remote courier needs from the config (plain data: it is posted to the delivery workers). */
export function remoteSettings(c: Config): RemoteSettings {
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
    dane: c.relay.dane === "on",
    tlsRpt: c.relay.tlsRpt,
    mtaSts: c.relay.mtaSts === "on",
    stsDir: join(c.dataDir, "mta-sts"),
    tlsCa: c.relay.tlsCa === "" ? "" : readFileSync(c.relay.tlsCa, "utf8"),
    // RFC 5321 §4.5.3.2 values; there is no config key for them (tests of the client shorten them directly).
    timeouts: RFC5321_TIMEOUTS,
  };
}

export interface BackOfficeOptions {
  /** The current config and policy (SIGHUP replaces both). */
  config(): Config;
  policy(): Policy;
  log: Logger;
  stats: QueueStats;
  metrics: ServerMetrics;
  /** A signer for one DSN, or null (queue/ Notifier). */
  dsnSigner?: () => DsnSigner | null;
}

export interface BackOffice {
  readonly spool: Spool;
  readonly pool: DeliveryPool;
  /** SIGHUP: new relay settings for the workers (each rebuilds only what they change). */
  reload(next: Config): void;
  /** The directory changed (e.g. its database answers again): DSNs that waited for it go out. */
  directoryChanged(): void;
  stop(): Promise<void>;
}

export async function startBackOffice(o: BackOfficeOptions): Promise<BackOffice> {
  const config = o.config();
  const { log, stats, metrics } = o;
  const queueDir = join(config.dataDir, "queue");
  const mailDir = join(config.dataDir, "mail");
  mkdirSync(queueDir, { recursive: true, mode: 0o700 });
  mkdirSync(mailDir, { recursive: true, mode: 0o700 });
  let spool: Spool | null = null;
  // TLS-RPT (relay.tls_rpt, read at start): results kept per day under DATA/tls-rpt, reports sent once a day is over.
  const rptDir = join(config.dataDir, "tls-rpt");
  const rptLog = config.relay.tlsRpt ? new TlsRptLog(rptDir) : null;
  const observer = rptLog === null ? metrics.delivery : { ...metrics.delivery, tlsRpt: (r: Parameters<TlsRptLog["record"]>[0]) => rptLog.record(r) };
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
    ...(config.local.delivery === "lmtp" ? { lmtp: { target: config.local.lmtp, hostname: config.hostname, timeouts: RFC5321_TIMEOUTS } } : {}),
    log,
    // Notices: a DSN from the queue; then a kept item is deleted by the pool.
    onFinished: (r) => notifier.notify(r.id, r.notices, r.done),
    onReleased: (ref: string) => spool?.release(ref),
    onResult: resultReporter(log, observer),
  });
  spool = new Spool({
    dir: queueDir,
    onRound: metrics.spoolRound,
    onCommitted: (c) => {
      stats.add(c.id, c.envelope.arrival);
      pool.enqueue(c.ref, false, c.envelope);
    },
  });
  const notifier = new Notifier({
    queueDir,
    // Read at each DSN: a SIGHUP may change them.
    get hostname() {
      return o.config().hostname;
    },
    get maxAgeMs() {
      return o.config().queue.maxAgeMs;
    },
    spool,
    routeOwn: (address) => o.policy().routeOwn(address),
    ...(o.dsnSigner ? { signer: o.dsnSigner } : {}),
    log,
  });
  const recovered = recover(queueDir, log);
  await pool.start();
  await resumeRecovered(
    recovered,
    {
      deliverNow: (id, envelope) => pool.enqueue(id, true, envelope),
      schedule: (id, at, envelope) => pool.schedule(id, at, envelope),
      track: (id, envelope) => stats.add(id, envelope.arrival),
    },
    notifier,
    log,
  );
  const s = spool;
  let rptTimer: ReturnType<typeof setInterval> | null = null;
  if (rptLog !== null) {
    const sender = new TlsRptSender({
      dir: rptDir,
      hostname: () => o.config().hostname,
      dns: new Resolver({ servers: config.dns.servers }),
      spool: s,
      routeOwn: (address) => o.policy().routeOwn(address),
      log,
      // Signed like our DSNs (CONTRACT "DKIM"): for <hostname>'s domain when it has selectors.
      sign: (message) => {
        const signer = o.dsnSigner?.() ?? null;
        if (signer === null) return null;
        signer.write(message);
        return signer.end();
      },
    });
    const run = (): void => {
      rptLog.flush();
      sender.run().catch((err) => log.warn("tlsrpt.error", { error: String(err) }));
    };
    run();
    rptTimer = setInterval(run, 3_600_000);
    (rptTimer as { unref?: () => void }).unref?.();
  }
  return {
    spool: s,
    pool,
    reload: (next) => {
      pool.updateRemote(remoteSettings(next));
      // The workers got their local courier at start; switching Maildir ↔ LMTP or the LMTP server needs new ones.
      if (next.local.delivery !== config.local.delivery || next.local.lmtp !== config.local.lmtp) {
        log.warn("config.local_delivery_changed", { note: "local.delivery and local.lmtp apply at the next restart" });
      }
    },
    directoryChanged: () => {
      if (notifier.waitingCount > 0) void notifier.retryWaiting();
    },
    async stop() {
      if (rptTimer !== null) clearInterval(rptTimer);
      rptLog?.close();
      await s.close();
      await pool.stop();
    },
  };
}
