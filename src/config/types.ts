/** The validated configuration, in the shape the rest of the server uses (camelCase, absolute paths, ms). */

export type TlsMode = "none" | "starttls" | "implicit";
export type AuthMode = "off" | "optional" | "required";

export interface ListenerConfig {
  name: string;
  host: string;
  port: number;
  tls: TlsMode;
  auth: AuthMode;
  /** Each connection starts with a PROXY v1/v2 header (before TLS on an implicit listener) naming the client. */
  proxyProtocol: boolean;
  /** CIDR blocks of the peers allowed to send that header; others are closed without a banner. */
  proxyFrom: string[];
}

export type RateLimitKey = "ip" | "sender" | "sender_domain" | "recipient" | "auth_user";

export interface RateLimitConfig {
  key: RateLimitKey;
  /** The entry's `rate` as written ("60/1m"), for logs. */
  rate: string;
  /** N of "N/window". */
  count: number;
  windowMs: number;
}

export interface Config {
  hostname: string;
  /** Absolute. */
  dataDir: string;
  /** Absolute path of the file read; null = embedded defaults. */
  configPath: string | null;
  server: { user: string };
  /** Absolute paths. */
  tls: { cert: string; key: string };
  listeners: ListenerConfig[];
  local: {
    /** Lower-case. */
    domains: string[];
    /** Absolute; "" = no users file. */
    usersFile: string;
    catchAll: boolean;
    /** "maildir": DATA/mail; "lmtp": every local recipient goes to `lmtp`. */
    delivery: "maildir" | "lmtp";
    /** "unix:/absolute/path" (resolved against the config file's directory) or "host:port"; "" when unset. */
    lmtp: string;
    /** Lower-case address → lower-case target addresses (deduplicated). */
    aliases: Record<string, string[]>;
  };
  /** Where domains, users and aliases come from: "file" = local.* above; "postgres" = the database at url. */
  directory: { kind: "file" | "postgres"; url: string };
  relay: {
    /** CIDR blocks ("127.0.0.0/8", "::1/128"); a bare address in the file becomes /32 or /128. */
    networks: string[];
    /** "host:port" or "". */
    smarthost: string;
    smarthostUser: string;
    smarthostPassword: string;
    smarthostTls: TlsMode;
    /** Absolute or "". */
    smarthostCa: string;
    mxPort: number;
    /** Honour destinations' MTA-STS policies (RFC 8461). */
    mtaSts: "off" | "on";
    /** Honour DANE TLSA records (RFC 7672); trusts the AD bit of dns.servers. */
    dane: "off" | "on";
    /** Absolute path of a PEM file of extra CAs for verified TLS to MX hosts and MTA-STS fetches, or "". */
    tlsCa: string;
    /** Send daily TLS-RPT reports (RFC 8460). */
    tlsRpt: boolean;
    /** Lower-case domain → "host:port". */
    routes: Record<string, string>;
  };
  /** "ip" or "ip:port"; empty = the system resolver. */
  dns: { servers: string[] };
  /** Inbound defences of MX sessions (neither authenticated nor from relay.networks). */
  defence: {
    /** DNS blocklist zones, lower-case, no trailing dot. */
    dnsbl: string[];
    /** DNS allowlist zones: a listed client skips dnsbl, greylisting and pregreet. */
    dnswl: string[];
    /** > 0: the banner waits this long; a client that talks first is refused. 0 = off. */
    pregreetMs: number;
    greylist: boolean;
    greylistDelayMs: number;
  };
  /** [[rate_limits]]: messages per key value per window, over all listeners. */
  rateLimits: RateLimitConfig[];
  /**
   * CONTRACT [dkim]: sign mail of authenticated sessions and relay.networks (and our DSNs); signing domain
   * (lower-case) → selectors, each key at DATA/dkim/<domain>/<selector>.key (loaded by dkim/, not here).
   */
  dkim: { sign: boolean; selectors: Record<string, string[]> };
  /**
   * CONTRACT [checks]: inbound checks of MX sessions (neither authenticated nor from relay.networks). A config
   * file without [checks] has them all on (dmarc "enforce"); the embedded defaults (no file) have them all off.
   */
  checks: ChecksConfig;
  /** CONTRACT [srs]: secret "" = off; domain "" = the first local domain (resolved where the domains are known). */
  srs: { secret: string; domain: string };
  queue: { retryIntervalsMs: number[]; maxAgeMs: number; delayWarningMs: number };
  /** 0 in the file is resolved to the number of CPUs. */
  delivery: { workers: number };
  limits: {
    maxMessageSize: number;
    maxRecipients: number;
    maxConnections: number;
    maxConnectionsPerIp: number;
    maxAuthFailures: number;
    maxHops: number;
    authIpDelayAfter: number;
    authIpBlockAfter: number;
    authIpBlockMs: number;
    idleTimeoutS: number;
    /** Errors in one session before each further error reply is delayed 1 s (Postfix smtpd_soft_error_limit). */
    errorDelayAfter: number;
    /** The max_errors-th error reply of a session is 421 4.7.0, then close (Postfix smtpd_hard_error_limit). */
    maxErrors: number;
    /** Connections per minute from one address, over all listeners; 0 = no limit. */
    maxConnectionRatePerIp: number;
  };
  /** "host:port" or "" (off). */
  metrics: { listen: string };
}

export interface ChecksConfig {
  /** SPF (RFC 7208) of MAIL FROM, of the HELO name when it is <>. */
  spf: boolean;
  /** An SPF "fail" gets 550 5.7.23 at MAIL FROM (RFC 7372). */
  spfReject: boolean;
  /** Verify every DKIM-Signature (RFC 6376, RFC 8463). */
  dkim: boolean;
  /** Verify the ARC chain (RFC 8617). */
  arc: boolean;
  /** "on" records the result; "enforce" acts on the policy (reject → 550 5.7.1, quarantine → .Junk). */
  dmarc: "off" | "on" | "enforce";
}

/** Each error is one line "dotted.path: message", the path in TOML key names. */
export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: string[] };
