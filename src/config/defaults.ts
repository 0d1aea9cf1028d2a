import { availableParallelism, cpus, hostname } from "node:os";
import { resolve } from "node:path";
import type { ChecksConfig, Config, ListenerConfig } from "./types.ts";

/** CONTRACT example: the peers allowed to send a PROXY header when a listener's proxy_from is absent. */
export const DEFAULT_PROXY_FROM: readonly string[] = ["127.0.0.1/32"];

/** The listeners of CONTRACT "Embedded defaults": loopback only, unprivileged ports, no PROXY protocol. */
export function defaultListeners(): ListenerConfig[] {
  const proxy = (): Pick<ListenerConfig, "proxyProtocol" | "proxyFrom"> => ({ proxyProtocol: false, proxyFrom: [...DEFAULT_PROXY_FROM] });
  return [
    { name: "mx", host: "127.0.0.1", port: 2525, tls: "starttls", auth: "optional", ...proxy() },
    { name: "submission", host: "127.0.0.1", port: 2587, tls: "starttls", auth: "required", ...proxy() },
    { name: "submissions", host: "127.0.0.1", port: 2465, tls: "implicit", auth: "required", ...proxy() },
  ];
}

export function osHostname(): string {
  return hostname() || "localhost";
}

export function cpuCount(): number {
  return typeof availableParallelism === "function" ? availableParallelism() : Math.max(1, cpus().length);
}

/**
 * CONTRACT "Embedded defaults" (no config file); every other value is the default of the CONTRACT's example.
 * Relative paths resolve against cwd, as they would against the directory of a config file.
 */
/** [checks] of a config file that leaves keys out (CONTRACT "Defaults when a key is absent"). */
export const FILE_CHECKS_DEFAULTS: Readonly<ChecksConfig> = { spf: true, spfReject: false, dkim: true, arc: true, dmarc: "enforce" };

export function defaultConfig(cwd?: string): Config {
  const base = resolve(cwd ?? "");
  return {
    hostname: osHostname(),
    dataDir: resolve(base, "data"),
    configPath: null,
    server: { user: "" },
    tls: { cert: resolve(base, "certs/server.crt"), key: resolve(base, "certs/server.key") },
    listeners: defaultListeners(),
    local: { domains: ["localhost"], usersFile: resolve(base, "users.txt"), catchAll: true, delivery: "maildir", lmtp: "", aliases: {} },
    directory: { kind: "file", url: "" },
    relay: {
      networks: [],
      smarthost: "",
      smarthostUser: "",
      smarthostPassword: "",
      smarthostTls: "starttls",
      smarthostCa: "",
      mxPort: 25,
      mtaSts: "on",
      dane: "on",
      tlsCa: "",
      tlsRpt: false,
      routes: {},
    },
    dns: { servers: [] },
    defence: { dnsbl: [], dnswl: [], pregreetMs: 0, greylist: false, greylistDelayMs: 300_000 },
    rateLimits: [],
    dkim: { sign: true, selectors: {} },
    // CONTRACT: with no config file at all, [checks] is off (a development server on loopback does no DNS).
    checks: { spf: false, spfReject: false, dkim: false, arc: false, dmarc: "off" },
    srs: { secret: "", domain: "" },
    queue: {
      retryIntervalsMs: [60_000, 300_000, 1_800_000, 7_200_000, 21_600_000],
      maxAgeMs: 5 * 86_400_000,
      delayWarningMs: 4 * 3_600_000,
    },
    delivery: { workers: cpuCount() },
    limits: {
      maxMessageSize: 26_214_400,
      maxRecipients: 100,
      maxConnections: 10_000,
      maxConnectionsPerIp: 50,
      maxAuthFailures: 3,
      maxHops: 50,
      authIpDelayAfter: 3,
      authIpBlockAfter: 10,
      authIpBlockMs: 600_000,
      idleTimeoutS: 300,
      errorDelayAfter: 10,
      maxErrors: 20,
      maxConnectionRatePerIp: 0,
    },
    metrics: { listen: "127.0.0.1:9025" },
  };
}
