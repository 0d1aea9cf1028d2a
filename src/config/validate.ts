import { resolve } from "node:path";
import type * as z from "zod";
import { cpuCount, defaultConfig, defaultListeners, DEFAULT_PROXY_FROM, FILE_CHECKS_DEFAULTS } from "./defaults.ts";
import { fileSchema, type FileConfig } from "./schema.ts";
import type { Config, ConfigResult, ListenerConfig } from "./types.ts";

/** zod issues → "dotted.path: message" lines; an unknown key is reported once per key, under its own path. */
function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = [];
  for (const iss of issues) {
    const path = iss.path.map(String);
    if (iss.code === "unrecognized_keys") {
      for (const key of iss.keys) out.push(`${[...path, key].join(".")}: unknown key`);
    } else {
      out.push(`${path.length === 0 ? "(top level)" : path.join(".")}: ${iss.message}`);
    }
  }
  return out;
}

/** Checks across entries that no single key can make: listener names and bound addresses must not repeat. */
function checkListeners(listeners: ListenerConfig[]): string[] {
  const errors: string[] = [];
  const names = new Map<string, number>();
  const binds = new Map<string, number>();
  listeners.forEach((l, i) => {
    const byName = names.get(l.name);
    if (byName !== undefined) errors.push(`listeners.${i}.name: "${l.name}" is already the name of listeners.${byName}`);
    else names.set(l.name, i);
    // Port 0 asks the kernel for a fresh port each time, so two of them never collide.
    if (l.port === 0) return;
    const bind = `${l.host.toLowerCase()}|${l.port}`;
    const byBind = binds.get(bind);
    if (byBind !== undefined)
      errors.push(`listeners.${i}.port: ${l.host} port ${l.port} is already used by listeners.${byBind}`);
    else binds.set(bind, i);
  });
  return errors;
}

/** A relative unix socket path resolves against the config file's directory, like every path of the file. */
function lmtpPath(target: string, baseDir: string): string {
  return target.startsWith("unix:") ? `unix:${resolve(baseDir, target.slice(5))}` : target;
}

/** Keys that depend on each other. */
function checkLocal(local: Config["local"]): string[] {
  if (local.delivery === "lmtp" && local.lmtp === "") return ['local.lmtp: required when local.delivery = "lmtp"'];
  return [];
}

/** CONTRACT [srs]: the SRS domain is one of local.domains (a PostgreSQL directory's domains are not known here). */
function checkSrs(c: Config): string[] {
  if (c.srs.domain === "" || c.directory.kind !== "file" || c.local.domains.includes(c.srs.domain)) return [];
  return [`srs.domain: "${c.srs.domain}" is not one of local.domains`];
}

/** The file's values over the embedded defaults; relative paths against baseDir. */
function toConfig(f: FileConfig, baseDir: string, configPath: string | null): Config {
  const d = defaultConfig(baseDir);
  const path = (p: string | undefined, fallback: string) => (p === undefined ? fallback : resolve(baseDir, p));
  const optionalPath = (p: string | undefined, fallback: string) => (p === "" ? "" : path(p, fallback));
  const local = f.local;
  return {
    hostname: f.hostname ?? d.hostname,
    dataDir: path(f.data_dir, d.dataDir),
    configPath,
    server: { user: f.server?.user ?? d.server.user },
    tls: { cert: path(f.tls?.cert, d.tls.cert), key: path(f.tls?.key, d.tls.key) },
    listeners:
      f.listeners?.map((l) => ({
        name: l.name,
        host: l.host ?? "0.0.0.0",
        port: l.port,
        tls: l.tls ?? "starttls",
        auth: l.auth ?? "optional",
        proxyProtocol: l.proxy_protocol ?? false,
        proxyFrom: l.proxy_from ?? [...DEFAULT_PROXY_FROM],
      })) ?? defaultListeners(),
    // Without a [local] table the embedded "localhost, catch-all" applies; with one, only what it says: an
    // operator who names domains does not silently get a catch-all.
    // Under [directory] kind = "postgres" the embedded catch-all does not apply either: the domains come from the
    // database, and accepting every local part of them is something to ask for.
    local:
      local === undefined
        ? f.directory?.kind === "postgres"
          ? { ...d.local, catchAll: false }
          : d.local
        : {
            domains: [...new Set(local.domains ?? [])],
            usersFile: optionalPath(local.users_file, d.local.usersFile),
            catchAll: local.catch_all ?? false,
            delivery: local.delivery ?? d.local.delivery,
            lmtp: lmtpPath(local.lmtp ?? d.local.lmtp, baseDir),
            aliases: Object.fromEntries(Object.entries(local.aliases ?? {}).map(([k, v]) => [k, [...new Set(v)]])),
          },
    directory: { kind: f.directory?.kind ?? d.directory.kind, url: f.directory?.url ?? d.directory.url },
    relay: {
      networks: f.relay?.networks ?? d.relay.networks,
      smarthost: f.relay?.smarthost ?? d.relay.smarthost,
      smarthostUser: f.relay?.smarthost_user ?? d.relay.smarthostUser,
      smarthostPassword: f.relay?.smarthost_password ?? d.relay.smarthostPassword,
      smarthostTls: f.relay?.smarthost_tls ?? d.relay.smarthostTls,
      smarthostCa: optionalPath(f.relay?.smarthost_ca, d.relay.smarthostCa),
      mxPort: f.relay?.mx_port ?? d.relay.mxPort,
      mtaSts: f.relay?.mta_sts ?? d.relay.mtaSts,
      dane: f.relay?.dane ?? d.relay.dane,
      tlsCa: optionalPath(f.relay?.tls_ca, d.relay.tlsCa),
      tlsRpt: f.relay?.tls_rpt ?? d.relay.tlsRpt,
      routes: f.relay?.routes ?? d.relay.routes,
    },
    dns: { servers: f.dns?.servers ?? d.dns.servers },
    defence: {
      dnsbl: [...new Set(f.defence?.dnsbl ?? d.defence.dnsbl)],
      dnswl: [...new Set(f.defence?.dnswl ?? d.defence.dnswl)],
      pregreetMs: f.defence?.pregreet_ms ?? d.defence.pregreetMs,
      greylist: f.defence?.greylist === undefined ? d.defence.greylist : f.defence.greylist === "on",
      greylistDelayMs: f.defence?.greylist_delay ?? d.defence.greylistDelayMs,
    },
    rateLimits: (f.rate_limits ?? []).map((r) => ({ key: r.key, ...r.rate })),
    dkim: {
      sign: f.dkim?.sign ?? d.dkim.sign,
      selectors: Object.fromEntries(Object.entries(f.dkim?.selectors ?? d.dkim.selectors).map(([k, v]) => [k, [...new Set(v)]])),
    },
    checks: {
      spf: (f.checks?.spf ?? (FILE_CHECKS_DEFAULTS.spf ? "on" : "off")) === "on",
      spfReject: f.checks?.spf_reject ?? FILE_CHECKS_DEFAULTS.spfReject,
      dkim: (f.checks?.dkim ?? (FILE_CHECKS_DEFAULTS.dkim ? "on" : "off")) === "on",
      arc: (f.checks?.arc ?? (FILE_CHECKS_DEFAULTS.arc ? "on" : "off")) === "on",
      dmarc: f.checks?.dmarc ?? FILE_CHECKS_DEFAULTS.dmarc,
    },
    srs: { secret: f.srs?.secret ?? d.srs.secret, domain: f.srs?.domain ?? d.srs.domain },
    queue: {
      retryIntervalsMs: f.queue?.retry_intervals ?? d.queue.retryIntervalsMs,
      maxAgeMs: f.queue?.max_age ?? d.queue.maxAgeMs,
      delayWarningMs: f.queue?.delay_warning ?? d.queue.delayWarningMs,
    },
    delivery: { workers: f.delivery?.workers || cpuCount() },
    limits: {
      maxMessageSize: f.limits?.max_message_size ?? d.limits.maxMessageSize,
      maxRecipients: f.limits?.max_recipients ?? d.limits.maxRecipients,
      maxConnections: f.limits?.max_connections ?? d.limits.maxConnections,
      maxConnectionsPerIp: f.limits?.max_connections_per_ip ?? d.limits.maxConnectionsPerIp,
      maxAuthFailures: f.limits?.max_auth_failures ?? d.limits.maxAuthFailures,
      maxHops: f.limits?.max_hops ?? d.limits.maxHops,
      authIpDelayAfter: f.limits?.auth_ip_delay_after ?? d.limits.authIpDelayAfter,
      authIpBlockAfter: f.limits?.auth_ip_block_after ?? d.limits.authIpBlockAfter,
      authIpBlockMs: f.limits?.auth_ip_block ?? d.limits.authIpBlockMs,
      idleTimeoutS: f.limits?.idle_timeout_s ?? d.limits.idleTimeoutS,
      errorDelayAfter: f.limits?.error_delay_after ?? d.limits.errorDelayAfter,
      maxErrors: f.limits?.max_errors ?? d.limits.maxErrors,
      maxConnectionRatePerIp: f.limits?.max_connection_rate_per_ip ?? d.limits.maxConnectionRatePerIp,
    },
    metrics: { listen: f.metrics?.listen ?? d.metrics.listen },
  };
}

/** Validate a parsed TOML object; relative paths resolve against baseDir (the config file's directory). */
export function validateConfig(raw: unknown, baseDir: string, configPath: string | null): ConfigResult {
  const parsed = fileSchema().safeParse(raw);
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error.issues) };
  const config = toConfig(parsed.data, resolve(baseDir), configPath === null ? null : resolve(configPath));
  const errors = [...checkListeners(config.listeners), ...checkLocal(config.local), ...checkSrs(config)];
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}
