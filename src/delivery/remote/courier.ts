/**
 * The remote courier: SMTP relay of non-local recipients (issue 4). Recipients are grouped by destination (the
 * transport-map entry, the smart host, or a domain's MX set), and each group goes in ONE transaction. Connections
 * are kept per destination: a finished one waits idle for a few seconds for the next message (probed with RSET
 * then, RFC 5321 §4.1.1.5), and at most `maxPerDestination` exist per destination. A destination that is slow or
 * down never holds up others: a delivery waits at most `slotWaitMs` for a connection slot (then it is deferred and
 * its worker slot freed), and a destination whose hosts all timed out connecting is deferred at once for `deadMs`.
 * Each group's outcomes are reported as soon as its final reply is in, so that the worker records a remote 250
 * immediately (the duplicate window, CONTRACT "Guarantees").
 */
import type { Dialer } from "../../transport/types.ts";
import type { DnsLookup } from "../../dns/index.ts";
import { localOutcome } from "../../mail/index.ts";
import type { Courier, DeliveryAttempt, EnvelopeRecipient, Outcome, OutcomeReport, StoredMessage, TlsRptResult } from "../../mail/index.ts";
import { Router } from "./route.ts";
import { tlsRequiredNo } from "./tls-required.ts";
import type { Destination, Hop, RouteSettings } from "./route.ts";
import type { StsSource } from "./mta-sts.ts";
import { hasControl, RFC5321_TIMEOUTS, SessionError, SmtpSession, StaleConnectionError } from "./smtp-client.ts";
import type { ClientTlsPolicy, RemoteTimeouts, SessionOptions } from "./smtp-client.ts";

/** Everything the remote courier needs; plain data, so it crosses into a worker with postMessage. */
export interface RemoteSettings extends RouteSettings {
  /** Our name in EHLO. */
  hostname: string;
  smarthostUser: string;
  smarthostPassword: string;
  /** PEM of extra CAs trusted for the smart host ("" = the system's). */
  smarthostCa: string;
  /** PEM of extra CAs for verified TLS to MX hosts under MTA-STS (relay.tls_ca); "" or absent = the system's. */
  tlsCa?: string;
  /** Record TLS-RPT results (relay.tls_rpt) in the outcomes. */
  tlsRpt?: boolean;
  /** Honour MTA-STS (relay.mta_sts); the worker builds the policy cache in `stsDir` (DATA/mta-sts) when set. */
  mtaSts?: boolean;
  stsDir?: string;
  timeouts: RemoteTimeouts;
  /** Connections per destination (per worker); default 20 (Postfix's default_destination_concurrency_limit). */
  maxPerDestination?: number;
  /** How long a finished connection waits for the next message; default 5 s. */
  idleMs?: number;
  /** How long a delivery waits for a connection slot of a busy destination; default 30 s. */
  slotWaitMs?: number;
  /** How long a destination that could not be reached at all is deferred without trying; default 5 s. */
  deadMs?: number;
}

/** MX delivery on port 25 with the RFC 5321 §4.5.3.2 timeouts, no routes, no smart host. */
export function defaultRemoteSettings(hostname: string, over: Partial<RemoteSettings> = {}): RemoteSettings {
  return {
    hostname,
    routes: {},
    smarthost: "",
    smarthostTls: "starttls",
    smarthostUser: "",
    smarthostPassword: "",
    smarthostCa: "",
    mxPort: 25,
    dnsServers: [],
    timeouts: RFC5321_TIMEOUTS,
    ...over,
  };
}

type Dest = Extract<Destination, { kind: "hops" }> & { requireTls?: boolean };

/**
 * `indices` (sorted) split by envelope sender: one transaction has one MAIL FROM, and a forwarded copy's is its SRS
 * address (EnvelopeRecipient.sender, CONTRACT "Forwarding") while a recipient relayed directly keeps the original.
 * Usually there is one sender, and the list comes back as it is.
 */
function bySender(recipients: EnvelopeRecipient[], indices: number[]): number[][] {
  indices.sort((a, b) => a - b);
  const first = recipients[indices[0]!]!.sender;
  if (indices.every((k) => recipients[k]!.sender === first)) return [indices];
  const parts = new Map<string | undefined, number[]>();
  for (const k of indices) {
    const s = recipients[k]!.sender;
    const p = parts.get(s);
    if (p) p.push(k);
    else parts.set(s, [k]);
  }
  return [...parts.values()];
}

/** What TLS-RPT needs from an attempt: the MX host and address tried last, and the failure type if TLS failed. */
interface SessionSeen {
  mxHost?: string;
  ip?: string;
  failure?: string;
}

/**
 * The part of a destination a REQUIRETLS message may take (RFC 8689 §4.2.1, CONTRACT "REQUIRETLS"): the verified
 * smart host, or the hops DANE authenticates (TLSA records usable) or MTA-STS enforce names; null = none. Its own
 * pool key: its connections are opened with requireTls (a missing STARTTLS is then 5.7.30, not a deferral).
 */
function requireTlsDestination(d: Dest): Dest | null {
  if (d.smarthost) return d.tls === "none" ? null : { ...d, key: `${d.key}:requiretls`, requireTls: true };
  const hops = d.hops.filter((h) => (h.policy?.kind === "dane" && h.policy.tlsa.length > 0) || h.policy?.kind === "mta-sts");
  return hops.length === 0 ? null : { ...d, hops, key: `${d.key}:requiretls`, requireTls: true };
}

interface Pool {
  active: number;
  idle: Array<{ s: SmtpSession; timer: ReturnType<typeof setTimeout> }>;
  waiters: Array<() => void>;
  deadUntil: number;
  /** Why the destination is spared (the outcome of the connect that timed out). */
  deadOutcome: Outcome | null;
}

export class RemoteCourier implements Courier {
  readonly name = "remote";
  /** A second transaction is a second copy at the remote: outcomes must be recorded before anything moves on. */
  readonly exactlyOnce = false;
  private readonly router: Router;
  private readonly pools = new Map<string, Pool>();
  private readonly max: number;
  private readonly idleMs: number;
  private readonly slotWaitMs: number;
  private readonly deadMs: number;

  /** `dns`: the worker's resolver, when it has one to share; else the Router builds one from `s.dnsServers`. */
  constructor(
    private readonly s: RemoteSettings,
    private readonly dialer: Dialer,
    dns?: DnsLookup,
    sts?: StsSource,
  ) {
    this.router = new Router(s, dns, sts);
    this.max = s.maxPerDestination ?? 20;
    this.idleMs = s.idleMs ?? 5000;
    this.slotWaitMs = s.slotWaitMs ?? 30_000;
    this.deadMs = s.deadMs ?? 5000;
  }

  /**
   * Deliver, calling `attempt.report` (indices into `recipients`) once per destination as soon as its transaction
   * ends. Resolves with every outcome once every group is reported; never rejects. Remote delivery has nothing to
   * re-check: `attempt.recheck` is not used (at least once, CONTRACT "Guarantees").
   */
  async deliver(message: StoredMessage, recipients: EnvelopeRecipient[], attempt: DeliveryAttempt = {}): Promise<Outcome[]> {
    const out: Outcome[] = new Array(recipients.length);
    const given = attempt.report;
    await this.deliverGroups(message, recipients, (indices, outcomes) => {
      indices.forEach((k, j) => (out[k] = outcomes[j]));
      return given?.(indices, outcomes);
    });
    return out;
  }

  private async deliverGroups(message: StoredMessage, recipients: EnvelopeRecipient[], report: OutcomeReport): Promise<void> {
    // The common case, one recipient whose destination the config decides: no grouping, no DNS, no await for it.
    if (recipients.length === 1) {
      const r = recipients[0];
      if (r.route.kind === "remote" && !hasControl(r.address) && !hasControl(r.route.domain)) {
        const dest = this.router.fixedRoute(r.route.domain.toLowerCase());
        if (dest !== null && dest.kind === "hops") {
          await report([0], await this.transaction(dest, message, recipients));
          return;
        }
      }
    }
    const byDomain = new Map<string, number[]>();
    const refused: number[] = [];
    recipients.forEach((r, k) => {
      // Never a line break (or any control character) towards DNS or a command line.
      if (hasControl(r.address) || (r.route.kind === "remote" && hasControl(r.route.domain))) {
        refused.push(k);
        return;
      }
      const d = r.route.kind === "remote" ? r.route.domain : r.address.slice(r.address.lastIndexOf("@") + 1).toLowerCase();
      const g = byDomain.get(d);
      if (g) g.push(k);
      else byDomain.set(d, [k]);
    });
    const groups = new Map<string, { dest: Dest; indices: number[] }>();
    const early: Promise<void>[] = [];
    if (refused.length > 0) {
      const o = localOutcome("failed", 501, "5.1.3", "the recipient address contains a control character");
      early.push(Promise.resolve(report(refused, refused.map(() => o))));
    }
    // RFC 8689 §5 `TLS-Required: No`: looked for only when a policy could apply (DANE or MTA-STS on), in the header
    // block (bounded); ignored for a REQUIRETLS message.
    const ignorePolicy = message.envelope.requireTls !== true && (this.s.dane === true || this.s.mtaSts === true) && tlsRequiredNo(message);
    await Promise.all(
      [...byDomain].map(async ([domain, indices]) => {
        let dest: Destination;
        try {
          dest = await this.router.route(domain, ignorePolicy);
        } catch (err) {
          dest = { kind: "deferred", code: 451, enhanced: "4.4.3", text: `routing ${domain} failed: ${String(err)}` };
        }
        if (dest.kind !== "hops") {
          const o = localOutcome(dest.kind, dest.code, dest.enhanced, dest.text);
          if (dest.policy !== undefined && dest.policy !== "none") o.tlsPolicy = dest.policy;
          if (this.s.tlsRpt === true && dest.report !== undefined) {
            const r = dest.report;
            o.tlsRpt = { domain: r.domain, policyType: r.type, policyString: r.policyString, mxHost: r.mxHost, failure: r.failure };
          }
          early.push(Promise.resolve(report(indices, indices.map(() => o))));
          return;
        }
        // Domains that share a destination (the smart host, one transport-map target) share a transaction.
        const g = groups.get(dest.key);
        if (g) g.indices.push(...indices);
        else groups.set(dest.key, { dest, indices });
      }),
    );
    await Promise.all([
      ...early,
      ...[...groups.values()].flatMap(({ dest, indices }) =>
        bySender(recipients, indices).map(async (part) => {
          const outcomes = await this.transaction(dest, message, part.map((k) => recipients[k]));
          await report(part, outcomes);
        }),
      ),
    ]);
  }

  /** QUIT every idle connection (worker shutdown). */
  close(): void {
    for (const p of this.pools.values()) {
      for (const { s, timer } of p.idle) {
        clearTimeout(timer);
        s.quit();
      }
      p.idle = [];
    }
  }

  private pool(key: string): Pool {
    let p = this.pools.get(key);
    if (p === undefined) {
      p = { active: 0, idle: [], waiters: [], deadUntil: 0, deadOutcome: null };
      this.pools.set(key, p);
    }
    return p;
  }

  private async transaction(given: Dest, message: StoredMessage, rcpts: EnvelopeRecipient[]): Promise<Outcome[]> {
    let dest = given;
    if (message.envelope.requireTls === true) {
      const verified = requireTlsDestination(given);
      if (verified === null) {
        // RFC 8689 §4.2.1: no way to authenticate the next hop (no DANE, no MTA-STS enforce, not the verified
        // smart host): the message is returned at once, never sent.
        const o = localOutcome("failed", 550, "5.7.30", `REQUIRETLS: no authenticated TLS (DANE, MTA-STS or a verified smart host) to ${given.hops[0]?.name ?? given.key}`);
        return rcpts.map(() => o);
      }
      dest = verified;
    }
    const seen: SessionSeen = {};
    const outcomes = await this.transact(dest, message, rcpts, seen);
    const policy = dest.policy === "none" ? undefined : dest.policy;
    let rpt: TlsRptResult | undefined;
    if (this.s.tlsRpt === true && dest.report !== undefined && seen.mxHost !== undefined) {
      const r = dest.report;
      rpt = { domain: r.domain, policyType: r.type, policyString: r.policyString, mxHost: seen.mxHost };
      if (seen.ip !== undefined) rpt.receivingIp = seen.ip;
      const failure = dest.reportFailure ?? seen.failure;
      if (failure !== undefined) rpt.failure = failure;
    }
    if (policy === undefined && rpt === undefined) return outcomes;
    // Outcomes may be shared objects (one per group): stamp copies.
    return outcomes.map((o) => ({ ...o, ...(policy !== undefined ? { tlsPolicy: policy } : {}), ...(rpt !== undefined ? { tlsRpt: rpt } : {}) }));
  }

  private async transact(dest: Dest, message: StoredMessage, rcpts: EnvelopeRecipient[], seen: SessionSeen): Promise<Outcome[]> {
    const p = this.pool(dest.key);
    const all = (o: Outcome): Outcome[] => rcpts.map(() => o);
    if (Date.now() < p.deadUntil && p.deadOutcome !== null) return all(p.deadOutcome);
    if (!(await this.acquire(p))) {
      return all(localOutcome("deferred", 451, "4.4.5", `too many deliveries to ${dest.hops[0].name} in progress; will retry`));
    }
    let session: SmtpSession | null = null;
    try {
      for (let attempt = 0; ; attempt++) {
        const idle = attempt === 0 ? p.idle.pop() : undefined;
        if (idle !== undefined) {
          clearTimeout(idle.timer);
          session = idle.s;
        } else {
          const opened = await this.open(dest, seen);
          if (opened instanceof SessionError) {
            // Hosts that do not answer at all cost a connect timeout each: spare the next deliveries that wait.
            if (opened.unreachable) {
              p.deadUntil = Date.now() + this.deadMs;
              p.deadOutcome = opened.outcome;
            }
            return all(opened.outcome);
          }
          session = opened;
        }
        // A TLS session under the policy (new or reused): what TLS-RPT counts as a success.
        seen.mxHost = session.host;
        seen.ip = session.target.address;
        delete seen.failure;
        // MTA-STS testing (RFC 8461 §5): delivered whatever the TLS, but a session without TLS is reported.
        if (dest.policy === "mta-sts-testing" && !session.tls) seen.failure = "starttls-not-supported";
        try {
          return await session.send(message, rcpts);
        } catch (err) {
          // Only a reused connection that died while idle gets here; nothing was accepted: a fresh one.
          if (!(err instanceof StaleConnectionError) || attempt > 0) throw err;
          session = null;
        }
      }
    } catch (err) {
      session?.close();
      session = null;
      return all(localOutcome("deferred", 451, "4.3.0", `remote delivery error: ${String(err)}`));
    } finally {
      this.release(p, session);
    }
  }

  private acquire(p: Pool): Promise<boolean> {
    if (p.idle.length > 0 || p.active + p.idle.length < this.max) {
      p.active++;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const waiter = (): void => {
        clearTimeout(timer);
        p.active++;
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = p.waiters.indexOf(waiter);
        if (i >= 0) p.waiters.splice(i, 1);
        resolve(false);
      }, this.slotWaitMs);
      p.waiters.push(waiter);
    });
  }

  private release(p: Pool, session: SmtpSession | null): void {
    p.active--;
    if (session !== null && session.usable && !session.reader.failed) {
      const entry = {
        s: session,
        timer: setTimeout(() => {
          const i = p.idle.indexOf(entry);
          if (i >= 0) p.idle.splice(i, 1);
          session.quit();
        }, this.idleMs),
      };
      p.idle.push(entry);
    } else {
      session?.close();
    }
    const w = p.waiters.shift();
    w?.();
  }

  /** Try each host and address in order; an opportunistic STARTTLS that fails is retried in plain text. */
  private async open(dest: Dest, seen: SessionSeen = {}): Promise<SmtpSession | SessionError> {
    let last = new SessionError(localOutcome("deferred", 451, "4.4.4", `no host to deliver to for ${dest.key}`));
    for (const hop of dest.hops) {
      for (const address of hop.addresses.length > 0 ? hop.addresses : [hop.name]) {
        const target = { address, port: hop.port, name: hop.name };
        // A hop under DANE or MTA-STS requires TLS: never the plaintext retry below (RFC 7672 §2.2, RFC 8461 §5).
        let tls: ClientTlsPolicy = hop.policy !== undefined ? "required" : dest.tls;
        for (;;) {
          try {
            return await SmtpSession.open(this.dialer, target, this.options(dest, tls, hop));
          } catch (err) {
            last = err instanceof SessionError ? err : new SessionError(localOutcome("deferred", 451, "4.4.2", String(err)));
            if (last.tlsFailure !== undefined) {
              seen.mxHost = hop.name;
              seen.ip = address;
              seen.failure = last.tlsFailure;
            }
            if (last.tlsFailed && tls === "opportunistic") {
              tls = "none";
              continue;
            }
            break;
          }
        }
      }
    }
    return last;
  }

  private options(dest: Dest, tls: ClientTlsPolicy, hop: Hop): SessionOptions {
    const o: SessionOptions = { helo: this.s.hostname, tls, verify: dest.smarthost, timeouts: this.s.timeouts };
    if (dest.requireTls === true) o.requireTls = true;
    if (hop.policy?.kind === "dane") {
      // RFC 7672 §3.1: the TLSA records authenticate; no PKIX check (DANE-TA's chain and name are checked by us).
      o.policy = "dane";
      o.tlsa = hop.policy.tlsa;
    } else if (hop.policy?.kind === "mta-sts") {
      // RFC 8461 §4.2: a certificate valid for the MX host name, chained to a trusted CA (plus relay.tls_ca).
      o.policy = "mta-sts";
      o.verify = true;
      if (this.s.tlsCa !== undefined && this.s.tlsCa !== "") o.ca = this.s.tlsCa;
    }
    if (dest.smarthost) {
      if (this.s.smarthostCa !== "") o.ca = this.s.smarthostCa;
      if (this.s.smarthostUser !== "") o.auth = { user: this.s.smarthostUser, password: this.s.smarthostPassword };
    }
    return o;
  }
}
