/**
 * Connections as the composition root admits them: the per-listener session factory handed to the transport,
 * the connection limits counted over all listeners (CONTRACT: max_connections, max_connections_per_ip), the idle
 * sweep and the drain at shutdown. Sessions get their ports (spool, policy, auth, clock, log, metrics) here; what
 * a session does with them is session/'s business.
 */
import type { Authenticator } from "../auth/index.ts";
import type { Config, ListenerConfig } from "../config/index.ts";
import { anyCheckOn } from "../inbound/index.ts";
import type { Stage } from "../mail/index.ts";
import type { Logger } from "../observe/index.ts";
import { setImmediate } from "node:timers";
import { ConnectionRateLimiter, type Policy } from "../policy/index.ts";
import { Reply } from "../protocol/index.ts";
import type { Spool } from "../queue/index.ts";
import { Session, type SessionSettings } from "../session/index.ts";
import type { Conn, ConnHandler, ListenerSpec } from "../transport/types.ts";
import type { ServerMetrics } from "./metrics.ts";

const NOOP_HANDLER: ConnHandler = { onData() {}, onDrain() {}, onClose() {} };
const enc = new TextEncoder();

function sessionSettings(c: Config, l: ListenerConfig): SessionSettings {
  return {
    hostname: c.hostname,
    listener: l.name,
    tls: l.tls,
    auth: l.auth,
    maxMessageSize: c.limits.maxMessageSize,
    maxRecipients: c.limits.maxRecipients,
    maxAuthFailures: c.limits.maxAuthFailures,
    errorDelayAfter: c.limits.errorDelayAfter,
    maxErrors: c.limits.maxErrors,
    // RFC 8601 §5: with any check on we add our Authentication-Results, so fields forged with our id go.
    ownAuthservId: anyCheckOn(c.checks) ? c.hostname : "",
  };
}

export interface ConnectionDeps {
  /** The current config and policy (SIGHUP replaces both). */
  config(): Config;
  policy(): Policy;
  auth: Authenticator;
  /** The inbound stages in order, as they apply to a new connection. */
  stages(): ReadonlyArray<Stage>;
  /** Null between binding and the spool being open (start-up). */
  spool(): Spool | null;
  log: Logger;
  metrics: ServerMetrics;
}

export class Connections {
  readonly sessions = new Set<Session>();
  private readonly perIp = new Map<string, number>();
  private total = 0;
  private draining = false;
  private readonly clock = {
    now: Date.now,
    delay: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
    // A later event-loop turn: the per-turn input cap continues a session here (fairness, issue 15).
    defer: (fn: () => void): void => void setImmediate(fn),
  };
  /** CONTRACT max_connection_rate_per_ip: one limiter for all listeners (bounded memory: policy/connection-rate.ts). */
  private readonly connRate: ConnectionRateLimiter;

  constructor(private readonly d: ConnectionDeps) {
    this.connRate = new ConnectionRateLimiter(d.config().limits.maxConnectionRatePerIp);
  }

  /** SIGHUP: a new limits.max_connection_rate_per_ip. */
  setConnectionRate(perMinute: number): void {
    this.connRate.setRate(perMinute);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** The transport's ConnHandler factory. */
  readonly factory = (conn: Conn, spec: ListenerSpec): ConnHandler => {
    const d = this.d;
    const config = d.config();
    // The listener's current settings (SIGHUP may have changed its auth mode or the limits).
    const lc = config.listeners.find((l) => l.name === spec.name)!;
    const ip = conn.remoteAddress;
    const lim = config.limits;
    const spool = d.spool();
    if (spool === null) {
      // Between binding and the spool being open (start-up): nothing could be stored yet.
      conn.write(enc.encode("421 4.3.0 Server starting, try again\r\n"));
      conn.end();
      return NOOP_HANDLER;
    }
    if (this.draining || this.total >= lim.maxConnections || (this.perIp.get(ip) ?? 0) >= lim.maxConnectionsPerIp) {
      d.metrics.refused("421");
      conn.write(enc.encode(this.draining ? "421 4.3.2 Server shutting down\r\n" : "421 4.7.0 Too many connections, try later\r\n"));
      conn.end();
      return NOOP_HANDLER;
    }
    if (!this.connRate.allow(ip, Date.now())) {
      d.metrics.refused("421");
      d.log.warn("connection.rate_limited", { client: ip, listener: spec.name, rate: lim.maxConnectionRatePerIp });
      conn.write(enc.encode(`${Reply.connectionRate}\r\n`));
      conn.end();
      return NOOP_HANDLER;
    }
    this.total++;
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    d.metrics.connection(spec.name, spec.implicitTls);
    const session = new Session(conn, sessionSettings(config, lc), {
      spool,
      stages: d.stages(),
      policy: d.policy(),
      auth: d.auth,
      clock: this.clock,
      log: d.log,
      metrics: d.metrics.session,
      onGone: (s) => {
        this.sessions.delete(s);
        this.total--;
        const n = (this.perIp.get(ip) ?? 1) - 1;
        if (n <= 0) this.perIp.delete(ip);
        else this.perIp.set(ip, n);
        d.metrics.connectionClosed(spec.name);
      },
    });
    this.sessions.add(session);
    session.start();
    return session;
  };

  /** CONTRACT: 421 4.4.2 after idle_timeout_s; slowloris counts as idle outside DATA. */
  sweepIdle(now: number): void {
    const idleMs = this.d.config().limits.idleTimeoutS * 1000;
    for (const s of this.sessions) s.checkIdle(now, idleMs);
  }

  /** SIGTERM, first step: new connections get 421 4.3.2 from now on. */
  stopAccepting(): void {
    this.draining = true;
  }

  /** SIGTERM: open sessions get up to `ms` to finish, then they are ended. */
  async drain(ms: number): Promise<void> {
    this.draining = true;
    for (const s of [...this.sessions]) s.shutdown(false);
    const deadline = Date.now() + ms;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of [...this.sessions]) s.shutdown(true);
  }
}
