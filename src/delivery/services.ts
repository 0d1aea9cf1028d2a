/**
 * What a delivery worker keeps for its whole life, built once per worker thread: the couriers by route kind and
 * the stateful services behind them (the LMTP and remote couriers' connection pools and routing today; the DNS resolver's
 * cache and an MTA-STS policy cache as they land). A SIGHUP sends new settings; only what those settings change
 * is rebuilt, so a reload that changes nothing a service depends on keeps its caches and connections.
 *
 * The one place that picks concrete couriers (ARCHITECTURE principle 4).
 */
import { Resolver } from "../dns/index.ts";
import type { SyncBatcher } from "../queue/index.ts";
import type { Dialer } from "../transport/types.ts";
import type { Courier, Route } from "../mail/index.ts";
import { LmtpCourier } from "./lmtp/index.ts";
import { MaildirCourier } from "./local/index.ts";
import { MtaStsCache, RemoteCourier } from "./remote/index.ts";
import type { RemoteSettings } from "./remote/index.ts";
import { COURIER_KINDS } from "./worker-protocol.ts";
import type { WorkerInit } from "./worker-protocol.ts";

export interface WorkerDeps {
  dialer: Dialer;
}

/** Plain-data settings compared by value (they arrive by postMessage, so never by identity). */
function sameSettings(a: RemoteSettings, b: RemoteSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class WorkerServices {
  private readonly couriers = new Map<Route["kind"], Courier>();
  private remoteSettings: RemoteSettings;
  /** The worker's DNS resolver and its cache; replaced only when `[dns] servers` changes. */
  private dns: Resolver;
  /** MTA-STS policies (RFC 8461), persisted under DATA/mta-sts; rebuilt only when what it reads changes. */
  private sts: MtaStsCache | undefined;

  constructor(
    init: WorkerInit,
    batcher: SyncBatcher,
    private readonly deps: WorkerDeps,
  ) {
    this.remoteSettings = init.remote;
    this.dns = new Resolver({ servers: init.remote.dnsServers });
    this.sts = this.buildSts(init.remote);
    // Route kind "local": the Maildirs under DATA/mail, or an LMTP server (local.delivery = "lmtp").
    this.couriers.set(
      "local",
      init.lmtp !== undefined
        ? new LmtpCourier(init.lmtp, deps.dialer)
        : new MaildirCourier({ mailDir: init.mailDir, hostname: init.hostname, batcher }),
    );
    this.couriers.set("remote", new RemoteCourier(init.remote, deps.dialer, this.dns, this.sts));
    for (const kind of COURIER_KINDS) if (!this.couriers.has(kind)) throw new Error(`no courier for route kind ${kind}`);
  }

  private buildSts(s: RemoteSettings): MtaStsCache | undefined {
    if (s.mtaSts !== true || s.stsDir === undefined) return undefined;
    return new MtaStsCache({ dir: s.stsDir, dns: this.dns, ca: s.tlsCa ?? "" });
  }

  /** The courier for a route kind (undefined: none, the recipient waits). */
  courier(kind: Route["kind"]): Courier | undefined {
    return this.couriers.get(kind);
  }

  /**
   * SIGHUP: new relay settings (routes, smart host, credentials, DNS servers). Unchanged settings keep the remote
   * courier with its open connections; changed ones replace it. Deliveries already running finish with the
   * courier they hold; the old one is closed (its idle connections QUIT) and new deliveries take the new one.
   */
  updateRemote(next: RemoteSettings): boolean {
    if (sameSettings(this.remoteSettings, next)) return false;
    const prev = this.remoteSettings;
    const dnsChanged = JSON.stringify(prev.dnsServers) !== JSON.stringify(next.dnsServers);
    if (dnsChanged) this.dns = new Resolver({ servers: next.dnsServers });
    if (dnsChanged || prev.mtaSts !== next.mtaSts || prev.stsDir !== next.stsDir || prev.tlsCa !== next.tlsCa) {
      this.sts = this.buildSts(next);
    }
    this.remoteSettings = next;
    const old = this.couriers.get("remote");
    this.couriers.set("remote", new RemoteCourier(next, this.deps.dialer, this.dns, this.sts));
    old?.close();
    return true;
  }

  /** Worker shutdown. */
  close(): void {
    for (const c of this.couriers.values()) c.close();
  }
}
