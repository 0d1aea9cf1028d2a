/**
 * Which servers to ask: `[dns] servers` ("ip", "ip:port", "[ipv6]:port"), else the `nameserver` lines of
 * /etc/resolv.conf (resolv.conf(5): up to three are used, in order), else 127.0.0.1:53.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { Server } from "./transport.ts";

const DNS_PORT = 53;
/** resolv.conf(5) MAXNS: the system resolver ignores nameserver lines after the third. */
const MAXNS = 3;

/** One server string; null when it is none of the accepted forms. */
export function parseServer(s: string): Server | null {
  const t = s.trim();
  if (isIP(t)) return { host: t, port: DNS_PORT };
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:]+):(\d+)$/.exec(t);
  if (m === null || isIP(m[1]) === 0) return null;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1], port } : null;
}

/** The `nameserver` addresses of a resolv.conf text (IPv4 and IPv6, a `%zone` kept), in order. */
export function parseResolvConf(text: string): Server[] {
  const out: Server[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m === null) continue;
    const host = m[1];
    if (isIP(host.replace(/%.*$/, "")) === 0) continue;
    out.push({ host, port: DNS_PORT });
    if (out.length === MAXNS) break;
  }
  return out;
}

export function systemServers(path = "/etc/resolv.conf"): Server[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // no resolv.conf: the default below, as the system resolver does (resolv.conf(5))
  }
  const found = parseResolvConf(text);
  return found.length > 0 ? found : [{ host: "127.0.0.1", port: DNS_PORT }];
}

/** The configured servers, or the system's when none are configured. Throws on a malformed entry. */
export function resolveServers(configured: readonly string[], resolvConf?: string): Server[] {
  if (configured.length === 0) return systemServers(resolvConf);
  return configured.map((s) => {
    const p = parseServer(s);
    if (p === null) throw new Error(`not a DNS server address ("ip", "ip:port" or "[ipv6]:port"): ${s}`);
    return p;
  });
}
