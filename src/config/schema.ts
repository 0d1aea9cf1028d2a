/**
 * The zod schema of the TOML file, in its own key names. Every message is written here (one plain sentence);
 * values that need converting (durations, sizes, CIDRs, case) are converted by the schema itself so that each
 * error keeps the exact key path zod reports.
 */
// The namespace import (zod 4's documented form): under vitest on Bun, the re-exported `{ z }` binding is undefined.
import * as z from "zod";
import { isAddress, isDnsServer, isDomainName, isIP, isSelector, normalizeCidr, splitHostPort } from "./net-syntax.ts";
import { parseDuration, parseSize } from "./units.ts";

/** zod's error option: our text for a present but wrong value, "is required" for a missing one. */
function says(text: string) {
  return { error: (iss: { input?: unknown }) => (iss.input === undefined ? "is required" : text) };
}

type Issues = { addIssue(issue: { code: "custom"; message: string; path?: PropertyKey[]; input?: unknown }): void };

function quote(v: unknown): string {
  return JSON.stringify(v);
}

/** A string checked and converted by `conv`; `bad` words the message for a string that does not convert. */
function textAs<T>(typeText: string, conv: (s: string) => T | null, bad: (s: string) => string) {
  return z.string(says(typeText)).transform((s, ctx): T => {
    const v = conv(s);
    if (v === null) {
      ctx.addIssue({ code: "custom", message: bad(s), input: s });
      return z.NEVER;
    }
    return v;
  });
}

const int = (min: number, max: number, text: string) =>
  z.number(says(text)).int(says(text)).min(min, says(text)).max(max, says(text));

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, says(`expected one of ${values.map(quote).join(", ")}`));
}

function duration(positive: boolean) {
  return textAs(
    'expected a duration such as "30s", "5m", "2h" or "5d"',
    (s) => {
      const ms = parseDuration(s);
      return ms === null || (positive && ms === 0) ? null : ms;
    },
    (s) =>
      parseDuration(s) === 0
        ? `${quote(s)} is too short (expected more than zero)`
        : `${quote(s)} is not a duration (use e.g. 30s, 5m, 2h, 5d)`,
  );
}

function size(min: number) {
  const typeText = 'expected a size in bytes, such as 26214400, "25MB" or "25MiB"';
  return z.unknown().transform((v, ctx): number => {
    const bytes = typeof v === "number" || typeof v === "string" ? parseSize(v) : null;
    if (bytes === null || bytes < min) {
      const message =
        bytes !== null
          ? `expected at least ${min} bytes`
          : typeof v === "string"
            ? `${quote(v)} is not a size (use e.g. 26214400, "25MB" or "25MiB")`
            : typeText;
      ctx.addIssue({ code: "custom", message, input: v });
      return z.NEVER;
    }
    return bytes;
  });
}

/** `local.lmtp`: "unix:/absolute/path" or "host:port" (the path may also be relative to the config file). */
function lmtpTarget() {
  return textAs(
    'expected "unix:/path/to/socket" or "host:port"',
    (s) => (s === "" || (s.startsWith("unix:") && s.length > 5 && !s.includes("\0")) || splitHostPort(s, false) !== null ? s : null),
    (s) => `${quote(s)} is not "unix:/path/to/socket" or "host:port"`,
  );
}

/** "host:port" to connect to; `orEmpty` lets "" mean "not set". */
function hostPort(allowZero: boolean, orEmpty: boolean) {
  return textAs(
    'expected "host:port"',
    (s) => ((orEmpty && s === "") || splitHostPort(s, allowZero) !== null ? s : null),
    (s) => `${quote(s)} is not "host:port"${orEmpty ? ' or ""' : ""}`,
  );
}

function list<T extends z.ZodType>(item: T, what: string) {
  return z.array(item, says(`expected a list of ${what}`));
}

/** A table whose keys are checked with `key` (converted; null = bad) and values by the record's value schema. */
function keyedBy<V extends z.ZodType>(value: V, what: string, key: (k: string) => string | null, bad: (k: string) => string) {
  return z.record(z.string(), value, says(`expected a table of ${what}`)).transform((rec, ctx: Issues) => {
    const out: Record<string, z.output<V>> = {};
    for (const [k, v] of Object.entries(rec)) {
      const nk = key(k);
      if (nk === null) ctx.addIssue({ code: "custom", message: bad(k), path: [k], input: k });
      else if (Object.hasOwn(out, nk))
        ctx.addIssue({ code: "custom", message: `${quote(k)} repeats another key (keys are not case-sensitive)`, path: [k] });
      else out[nk] = v as z.output<V>;
    }
    return out;
  });
}

/** "60/1m" → 60 messages per 60 000 ms; null unless N is a positive integer and the window a positive duration. */
function parseRate(s: string): { rate: string; count: number; windowMs: number } | null {
  const m = /^(\d{1,9})\/(.+)$/.exec(s);
  if (m === null) return null;
  const count = Number(m[1]);
  const windowMs = parseDuration(m[2]!);
  return count > 0 && windowMs !== null && windowMs > 0 ? { rate: s, count, windowMs } : null;
}

/** Built on first use, not at import time (ARCHITECTURE principle 6). */
function buildFileSchema() {
  const posInt = int(1, Number.MAX_SAFE_INTEGER, "expected a positive integer");
  const port = int(0, 65535, "expected a port number from 0 to 65535");
  const str = z.string(says("expected a string"));
  const nonEmpty = z.string(says("expected a non-empty string")).min(1, says("expected a non-empty string"));
  const bool = z.boolean(says("expected true or false"));

  const tlsMode = oneOf(["none", "starttls", "implicit"]);
  const authMode = oneOf(["off", "optional", "required"]);

  const domain = textAs("expected a domain name", (s) => (isDomainName(s) ? s.toLowerCase() : null), (s) =>
    `${quote(s)} is not a valid domain name`,
  );
  const address = textAs("expected an address (local@domain)", (s) => (isAddress(s) ? s.toLowerCase() : null), (s) =>
    `${quote(s)} is not an address (expected local@domain)`,
  );
  // A DNS list zone (RFC 5782 §2.1): a domain name; a trailing dot is allowed and dropped.
  const zone = textAs("expected a DNS zone such as \"zen.spamhaus.org\"", (s) => {
    const z = s.endsWith(".") ? s.slice(0, -1) : s;
    return isDomainName(z) ? z.toLowerCase() : null;
  }, (s) => `${quote(s)} is not a DNS zone`);
  const host = textAs("expected an IP address or host name", (s) => (isIP(s) || isDomainName(s) ? s : null), (s) =>
    `${quote(s)} is not an IP address or host name`,
  );

  const cidrs = list(
    textAs("expected a CIDR block such as \"10.0.0.0/8\"", normalizeCidr, (s) => `${quote(s)} is not a CIDR`),
    "CIDR blocks",
  );

  const listener = z.strictObject(
    {
      name: nonEmpty,
      host: host.optional(),
      port,
      tls: tlsMode.optional(),
      auth: authMode.optional(),
      proxy_protocol: bool.optional(),
      proxy_from: cidrs.optional(),
    },
    says("expected a table ([[listeners]])"),
  );

  const table = <S extends z.core.$ZodLooseShape>(shape: S) => z.strictObject(shape, says("expected a table")).optional();

  return z.strictObject(
    {
      hostname: textAs("expected a domain name", (s) => (isDomainName(s) ? s : null), (s) =>
        `${quote(s)} is not a valid domain name`,
      ).optional(),
      data_dir: nonEmpty.optional(),
      server: table({ user: str.optional() }),
      tls: table({ cert: nonEmpty.optional(), key: nonEmpty.optional() }),
      listeners: z
        .array(listener, says("expected an array of tables ([[listeners]])"))
        .min(1, says("expected at least one listener"))
        .optional(),
      local: table({
        domains: list(domain, "domain names").optional(),
        users_file: str.optional(),
        catch_all: bool.optional(),
        delivery: oneOf(["maildir", "lmtp"]).optional(),
        lmtp: lmtpTarget().optional(),
        aliases: keyedBy(
          list(address, "addresses").min(1, says("expected at least one target address")),
          "address = [addresses]",
          (k) => (isAddress(k) ? k.toLowerCase() : null),
          (k) => `${quote(k)} is not an address (expected local@domain)`,
        ).optional(),
      }),
      directory: z
        .strictObject(
          {
            kind: oneOf(["file", "postgres"]).optional(),
            url: textAs(
              'expected a PostgreSQL URL such as "postgres://ringmta@localhost/mail"',
              (s) => (s === "" || /^postgres(ql)?:\/\/./.test(s) ? s : null),
              (s) => `${quote(s)} is not a PostgreSQL URL (expected postgres://user@host/database)`,
            ).optional(),
          },
          says("expected a table"),
        )
        .superRefine((d, ctx) => {
          if (d.kind === "postgres" && (d.url ?? "") === "")
            ctx.addIssue({ code: "custom", message: 'is required when kind = "postgres"', path: ["url"] });
        })
        .optional(),
      relay: table({
        networks: cidrs.optional(),
        smarthost: hostPort(false, true).optional(),
        smarthost_user: str.optional(),
        smarthost_password: str.optional(),
        smarthost_tls: tlsMode.optional(),
        smarthost_ca: str.optional(),
        mx_port: int(1, 65535, "expected a port number from 1 to 65535").optional(),
        mta_sts: oneOf(["off", "on"]).optional(),
        dane: oneOf(["off", "on"]).optional(),
        tls_ca: str.optional(),
        tls_rpt: bool.optional(),
        routes: keyedBy(
          hostPort(false, false),
          'domain = "host:port"',
          (k) => (isDomainName(k) ? k.toLowerCase() : null),
          (k) => `${quote(k)} is not a valid domain name`,
        ).optional(),
      }),
      dns: table({
        servers: list(
          textAs('expected "ip" or "ip:port"', (s) => (isDnsServer(s) ? s : null), (s) =>
            `${quote(s)} is not "ip" or "ip:port"`,
          ),
          "DNS servers",
        ).optional(),
      }),
      defence: table({
        dnsbl: list(zone, "DNS zones").optional(),
        dnswl: list(zone, "DNS zones").optional(),
        pregreet_ms: int(0, 60_000, "expected an integer from 0 to 60000 (milliseconds)").optional(),
        greylist: oneOf(["off", "on"]).optional(),
        greylist_delay: duration(true).optional(),
      }),
      rate_limits: z
        .array(
          z.strictObject(
            {
              key: oneOf(["ip", "sender", "sender_domain", "recipient", "auth_user"]),
              rate: textAs('expected a rate "N/window" such as "60/1m"', parseRate, (s) =>
                `${quote(s)} is not a rate (expected "N/window" with N > 0, e.g. "60/1m")`,
              ),
            },
            says("expected a table ([[rate_limits]])"),
          ),
          says("expected an array of tables ([[rate_limits]])"),
        )
        .optional(),
      dkim: table({
        sign: bool.optional(),
        selectors: keyedBy(
          list(
            textAs("expected a selector (a DNS label such as \"rsa2026\")", (s) => (isSelector(s) ? s : null), (s) =>
              `${quote(s)} is not a selector (letters, digits, "-", "_", dot-separated labels)`,
            ),
            "selectors",
          ).min(1, says("expected at least one selector")),
          'domain = ["selector", ...]',
          (k) => (isDomainName(k) ? k.toLowerCase().replace(/\.$/, "") : null),
          (k) => `${quote(k)} is not a valid domain name`,
        ).optional(),
      }),
      checks: table({
        spf: oneOf(["off", "on"]).optional(),
        spf_reject: bool.optional(),
        dkim: oneOf(["off", "on"]).optional(),
        arc: oneOf(["off", "on"]).optional(),
        dmarc: oneOf(["off", "on", "enforce"]).optional(),
      }),
      srs: table({
        secret: str.optional(),
        domain: z.union([z.literal(""), domain], says("expected a domain name")).optional(),
      }),
      queue: table({
        retry_intervals: list(duration(true), "durations")
          .min(1, says("expected at least one duration"))
          .optional(),
        max_age: duration(true).optional(),
        delay_warning: duration(false).optional(),
      }),
      delivery: table({ workers: int(0, 1024, "expected an integer from 0 to 1024").optional() }),
      limits: table({
        max_message_size: size(1024).optional(),
        max_recipients: posInt.optional(),
        max_connections: posInt.optional(),
        max_connections_per_ip: posInt.optional(),
        max_auth_failures: posInt.optional(),
        max_hops: posInt.optional(),
        auth_ip_delay_after: posInt.optional(),
        auth_ip_block_after: posInt.optional(),
        auth_ip_block: duration(true).optional(),
        idle_timeout_s: posInt.optional(),
        error_delay_after: posInt.optional(),
        max_errors: posInt.optional(),
        max_connection_rate_per_ip: int(0, Number.MAX_SAFE_INTEGER, "expected an integer of 0 or more").optional(),
      }),
      metrics: table({ listen: hostPort(true, true).optional() }),
    },
    says("expected a table"),
  );
}

let cached: ReturnType<typeof buildFileSchema> | undefined;

export function fileSchema(): ReturnType<typeof buildFileSchema> {
  cached ??= buildFileSchema();
  return cached;
}

export type FileConfig = z.output<ReturnType<typeof buildFileSchema>>;
