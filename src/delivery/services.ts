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
import { RemoteCourier } from "./remote/index.ts";
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

  constructor(
    init: WorkerInit,
    batcher: SyncBatcher,
    private readonly deps: WorkerDeps,
  ) {
    this.remoteSettings = init.remote;
    this.dns = new Resolver({ servers: init.remote.dnsServers });
    // Route kind "local": the Maildirs under DATA/mail, or an LMTP server (local.delivery = "lmtp").
    this.couriers.set(
      "local",
      init.lmtp !== undefined
        ? new LmtpCourier(init.lmtp, deps.dialer)
        : new MaildirCourier({ mailDir: init.mailDir, hostname: init.hostname, batcher }),
    );
    this.couriers.set("remote", new RemoteCourier(init.remote, deps.dialer, this.dns));
    for (const kind of COURIER_KINDS) if (!this.couriers.has(kind)) throw new Error(`no courier for route kind ${kind}`);
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
    if (JSON.stringify(this.remoteSettings.dnsServers) !== JSON.stringify(next.dnsServers)) {
      this.dns = new Resolver({ servers: next.dnsServers });
    }
    this.remoteSettings = next;
    const old = this.couriers.get("remote");
    this.couriers.set("remote", new RemoteCourier(next, this.deps.dialer, this.dns));
    old?.close();
    return true;
  }

  /** Worker shutdown. */
  close(): void {
    for (const c of this.couriers.values()) c.close();
  }
}
