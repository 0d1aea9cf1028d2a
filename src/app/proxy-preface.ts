/**
 * The PROXY protocol on a listener (CONTRACT: listeners' proxy_protocol / proxy_from): the transport's preface
 * built from our header reader (protocol/proxy-header.ts). A peer outside proxy_from is closed at accept; from
 * the others the header is read before TLS, before the session and before any banner, within
 * PROXY_HEADER_TIMEOUT_MS and PROXY_HEADER_MAX bytes; a missing, malformed or late header closes the connection
 * without a reply. The address it names becomes the connection's remoteAddress, so the session factory's per-IP
 * limits, Received, logs, relay.networks and AUTH records all see the client, not the proxy.
 */
import type { Logger } from "../observe/index.ts";
import { cidrContains, parseCidr, parseIp, type Cidr } from "../policy/index.ts";
import { ProxyHeaderReader } from "../protocol/index.ts";
import type { Preface, PrefaceReader, PrefaceVerdict } from "../transport/types.ts";

/** haproxy doc/proxy-protocol.txt §2: "at least 3 seconds to cover a TCP retransmit". */
export const PROXY_HEADER_TIMEOUT_MS = 5000;

const CLOSE: PrefaceVerdict = { kind: "close" };
const MORE: PrefaceVerdict = { kind: "more" };

/**
 * `from` is read at each connection (SIGHUP may change proxy_from); its CIDRs are parsed again only when the
 * list itself changes.
 */
export function proxyPreface(listener: string, from: () => readonly string[], log: Logger): Preface {
  let parsedOf: readonly string[] | null = null;
  let nets: Cidr[] = [];
  const allowed = (peer: string): boolean => {
    const list = from();
    if (list !== parsedOf) {
      nets = list.map(parseCidr).filter((c): c is Cidr => c !== null);
      parsedOf = list;
    }
    const ip = parseIp(peer);
    return ip !== null && nets.some((n) => cidrContains(n, ip));
  };
  return {
    timeoutMs: PROXY_HEADER_TIMEOUT_MS,
    open(peer: string): PrefaceReader | null {
      if (!allowed(peer)) {
        log.warn("proxy.refused", { listener, peer, reason: "peer outside proxy_from" });
        return null;
      }
      const reader = new ProxyHeaderReader();
      return {
        push(chunk: Uint8Array): PrefaceVerdict {
          const r = reader.push(chunk);
          switch (r.kind) {
            case "more":
              return MORE;
            case "error":
              log.warn("proxy.refused", { listener, peer, reason: r.reason });
              return CLOSE;
            case "local":
              return { kind: "done", peer: null, rest: r.rest };
            case "proxied":
              log.info("proxy.header", { listener, peer, client: r.address, port: r.port, version: r.version });
              return { kind: "done", peer: { address: r.address, port: r.port }, rest: r.rest };
          }
        },
        timedOut(): void {
          log.warn("proxy.refused", { listener, peer, reason: `no complete PROXY header within ${PROXY_HEADER_TIMEOUT_MS} ms` });
        },
      };
    },
  };
}
