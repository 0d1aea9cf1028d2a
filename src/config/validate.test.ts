import { readFileSync } from "node:fs";
import { availableParallelism, hostname } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "smol-toml";
import { describe, expect, test } from "vitest";
import { defaultConfig, validateConfig } from "./index.ts";
import type { Config, ConfigResult } from "./index.ts";

const here = dirname(fileURLToPath(import.meta.url));
const BASE = "/etc/ringmta";

function ok(r: ConfigResult): Config {
  if (!r.ok) throw new Error(`expected a valid config, got:\n${r.errors.join("\n")}`);
  return r.config;
}
function errorsOf(toml: string): string[] {
  const r = validateConfig(parse(toml), BASE, `${BASE}/ringmta.toml`);
  if (r.ok) throw new Error("expected errors, config was valid");
  return r.errors;
}
const valid = (toml: string) => ok(validateConfig(parse(toml), BASE, `${BASE}/ringmta.toml`));

describe("example.toml", () => {
  test("the documented example validates and carries the CONTRACT's values", () => {
    const file = join(here, "example.toml");
    const c = ok(validateConfig(parse(readFileSync(file, "utf8")), here, file));
    expect(c.hostname).toBe("mx.example.test");
    expect(c.dataDir).toBe("/var/lib/ringmta");
    expect(c.configPath).toBe(file);
    expect(c.tls).toEqual({ cert: join(here, "certs/server.crt"), key: join(here, "certs/server.key") });
    expect(c.listeners).toEqual([
      { name: "mx", host: "0.0.0.0", port: 25, tls: "starttls", auth: "optional", proxyProtocol: false, proxyFrom: ["127.0.0.1/32"] },
    ]);
    expect(c.local).toEqual({
      domains: ["example.test"],
      usersFile: join(here, "users.txt"),
      catchAll: false,
      delivery: "maildir",
      lmtp: "",
      aliases: { "postmaster@example.test": ["alice@example.test"] },
    });
    expect(c.directory).toEqual({ kind: "file", url: "" });
    expect(c.relay.routes).toEqual({ "remote.test": "127.0.0.1:2600" });
    expect(c.relay.smarthostTls).toBe("starttls");
    expect(c.defence).toEqual({ dnsbl: [], dnswl: [], pregreetMs: 0, greylist: false, greylistDelayMs: 300_000 });
    expect(c.rateLimits).toEqual([{ key: "ip", rate: "60/1m", count: 60, windowMs: 60_000 }]);
    expect(c.queue).toEqual({
      retryIntervalsMs: [60_000, 300_000, 1_800_000, 7_200_000, 21_600_000],
      maxAgeMs: 432_000_000,
      delayWarningMs: 14_400_000,
    });
    expect(c.limits.authIpBlockMs).toBe(600_000);
    expect(c.limits.maxMessageSize).toBe(26_214_400);
    expect([c.limits.errorDelayAfter, c.limits.maxErrors, c.limits.maxConnectionRatePerIp]).toEqual([10, 20, 0]);
    expect(c.metrics.listen).toBe("127.0.0.1:9025");
    expect(c.dkim).toEqual({ sign: true, selectors: { "example.test": ["rsa2026", "ed2026"] } });
    expect(c.checks).toEqual({ spf: true, spfReject: false, dkim: true, arc: true, dmarc: "enforce" });
    expect(c.srs).toEqual({ secret: "", domain: "" });
  });
  test("an empty file equals the embedded defaults resolved against the file's directory, except [checks] on", () => {
    const c = valid("");
    const d = defaultConfig(BASE);
    // CONTRACT: absent keys of a config file turn the checks on; only no file at all has them off.
    expect({ ...c, configPath: null }).toEqual({ ...d, checks: { spf: true, spfReject: false, dkim: true, arc: true, dmarc: "enforce" } });
    expect(d.checks).toEqual({ spf: false, spfReject: false, dkim: false, arc: false, dmarc: "off" });
    expect(c.configPath).toBe(`${BASE}/ringmta.toml`);
  });
});

describe("[checks] and [srs]", () => {
  test("each check can be turned off and dmarc set to on", () => {
    const c = valid('[checks]\nspf = "off"\nspf_reject = true\ndkim = "off"\narc = "off"\ndmarc = "on"\n');
    expect(c.checks).toEqual({ spf: false, spfReject: true, dkim: false, arc: false, dmarc: "on" });
  });
  test("bad values name the key", () => {
    expect(errorsOf('[checks]\ndmarc = "strict"\n')[0]).toMatch(/^checks\.dmarc: /);
    expect(errorsOf('[checks]\nspf = true\n')[0]).toMatch(/^checks\.spf: /);
    expect(errorsOf('[checks]\nbimi = "on"\n')[0]).toMatch(/^checks/);
  });
  test("the SRS domain must be a local domain", () => {
    const c = valid('[local]\ndomains = ["a.test", "b.test"]\n[srs]\nsecret = "s3"\ndomain = "B.test"\n');
    expect(c.srs).toEqual({ secret: "s3", domain: "b.test" });
    expect(errorsOf('[local]\ndomains = ["a.test"]\n[srs]\nsecret = "s3"\ndomain = "c.test"\n')).toEqual([
      'srs.domain: "c.test" is not one of local.domains',
    ]);
  });
});

describe("defaultConfig", () => {
  test("matches CONTRACT 'Embedded defaults'", () => {
    const c = defaultConfig("/srv/mta");
    expect(c.hostname).toBe(hostname() || "localhost");
    expect(c.dataDir).toBe("/srv/mta/data");
    expect(c.configPath).toBeNull();
    expect(c.tls).toEqual({ cert: "/srv/mta/certs/server.crt", key: "/srv/mta/certs/server.key" });
    expect(c.local).toEqual({
      domains: ["localhost"],
      usersFile: "/srv/mta/users.txt",
      catchAll: true,
      delivery: "maildir",
      lmtp: "",
      aliases: {},
    });
    expect(c.listeners).toEqual([
      { name: "mx", host: "127.0.0.1", port: 2525, tls: "starttls", auth: "optional", proxyProtocol: false, proxyFrom: ["127.0.0.1/32"] },
      { name: "submission", host: "127.0.0.1", port: 2587, tls: "starttls", auth: "required", proxyProtocol: false, proxyFrom: ["127.0.0.1/32"] },
      { name: "submissions", host: "127.0.0.1", port: 2465, tls: "implicit", auth: "required", proxyProtocol: false, proxyFrom: ["127.0.0.1/32"] },
    ]);
    expect(c.metrics.listen).toBe("127.0.0.1:9025");
    expect(c.relay.networks).toEqual([]);
    expect(c.dkim).toEqual({ sign: true, selectors: {} }); // CONTRACT: sign true with no selectors
    expect(c.delivery.workers).toBe(availableParallelism());
  });
  test("without an argument, paths resolve against the process's working directory", () => {
    expect(defaultConfig().dataDir).toBe(join(process.cwd(), "data"));
  });
});

describe("values and conversions", () => {
  test("outbound TLS policy keys (relay.dane, mta_sts, tls_ca, tls_rpt): defaults, values, errors by key path", () => {
    expect(valid("").relay).toMatchObject({ dane: "on", mtaSts: "on", tlsCa: "", tlsRpt: false });
    const c = valid(`[relay]\ndane = "off"\nmta_sts = "off"\ntls_ca = "ca/test.pem"\ntls_rpt = true`);
    expect(c.relay).toMatchObject({ dane: "off", mtaSts: "off", tlsCa: "/etc/ringmta/ca/test.pem", tlsRpt: true });
    expect(errorsOf(`[relay]\ndane = "yes"`)).toEqual([expect.stringMatching(/^relay\.dane: /)]);
    expect(errorsOf(`[relay]\nmta_sts = true`)).toEqual([expect.stringMatching(/^relay\.mta_sts: /)]);
    expect(errorsOf(`[relay]\ntls_rpt = "on"`)).toEqual(["relay.tls_rpt: expected true or false"]);
    expect(errorsOf(`[relay]\ntls_ca = 5`)).toEqual([expect.stringMatching(/^relay\.tls_ca: /)]);
  });

  test("relative paths resolve against the config's directory, absolute ones stay", () => {
    const c = valid(`
data_dir = "spool"
[tls]
cert = "../pki/c.pem"
key = "/abs/k.pem"
[local]
users_file = "u/users.txt"
[relay]
smarthost_ca = "ca.pem"`);
    expect(c.dataDir).toBe("/etc/ringmta/spool");
    expect(c.tls).toEqual({ cert: "/etc/pki/c.pem", key: "/abs/k.pem" });
    expect(c.local.usersFile).toBe("/etc/ringmta/u/users.txt");
    expect(c.relay.smarthostCa).toBe("/etc/ringmta/ca.pem");
  });
  test('"" leaves users_file and smarthost_ca unset', () => {
    const c = valid(`[local]\nusers_file = ""\n[relay]\nsmarthost_ca = ""`);
    expect(c.local.usersFile).toBe("");
    expect(c.relay.smarthostCa).toBe("");
  });
  test("a [local] table replaces the embedded catch-all localhost", () => {
    const c = valid(`[local]\ndomains = ["Example.TEST", "example.test"]`);
    expect(c.local.domains).toEqual(["example.test"]);
    expect(c.local.catchAll).toBe(false);
  });
  test("aliases are lower-cased and deduplicated", () => {
    const c = valid(`[local.aliases]\n"PostMaster@Example.Test" = ["Alice@Example.test", "alice@example.test", "bob@x.test"]`);
    expect(c.local.aliases).toEqual({ "postmaster@example.test": ["alice@example.test", "bob@x.test"] });
  });
  test("relay networks accept IPv4 and IPv6 and widen bare addresses", () => {
    const c = valid(`[relay]\nnetworks = ["127.0.0.0/8", "::1/128", "192.0.2.1", "2001:db8::1", "0.0.0.0/0"]`);
    expect(c.relay.networks).toEqual(["127.0.0.0/8", "::1/128", "192.0.2.1/32", "2001:db8::1/128", "0.0.0.0/0"]);
  });
  test("route domains are lower-cased; smarthost and DNS servers are kept", () => {
    const c = valid(`
[relay]
smarthost = "[::1]:587"
[relay.routes]
"Remote.Test" = "relay.example.test:2600"
[dns]
servers = ["127.0.0.1:5353", "::1"]`);
    expect(c.relay.routes).toEqual({ "remote.test": "relay.example.test:2600" });
    expect(c.relay.smarthost).toBe("[::1]:587");
    expect(c.dns.servers).toEqual(["127.0.0.1:5353", "::1"]);
  });
  test("sizes may be integers or strings with units; durations convert to ms", () => {
    const c = valid(`
[limits]
max_message_size = "10MiB"
auth_ip_block = "1h"
[queue]
retry_intervals = ["30s"]
max_age = "1w"
delay_warning = "0s"`);
    expect(c.limits.maxMessageSize).toBe(10_485_760);
    expect(c.limits.authIpBlockMs).toBe(3_600_000);
    expect(c.queue).toEqual({ retryIntervalsMs: [30_000], maxAgeMs: 604_800_000, delayWarningMs: 0 });
  });
  test("workers = 0 resolves to the CPU count; other values stay", () => {
    expect(valid(`[delivery]\nworkers = 3`).delivery.workers).toBe(3);
    expect(valid(`[delivery]\nworkers = 0`).delivery.workers).toBe(availableParallelism());
  });
  test("listener defaults: host 0.0.0.0, starttls, auth optional; port 0 may repeat; auth without TLS is allowed", () => {
    const c = valid(`
[[listeners]]
name = "a"
port = 0
[[listeners]]
name = "b"
port = 0
tls = "none"
auth = "required"`);
    expect(c.listeners).toEqual([
      { name: "a", host: "0.0.0.0", port: 0, tls: "starttls", auth: "optional", proxyProtocol: false, proxyFrom: ["127.0.0.1/32"] },
      { name: "b", host: "0.0.0.0", port: 0, tls: "none", auth: "required", proxyProtocol: false, proxyFrom: ["127.0.0.1/32"] },
    ]);
  });
  test("proxy_protocol and proxy_from per listener; a bare address becomes /32 or /128", () => {
    const c = valid(`
[[listeners]]
name = "lb"
port = 0
proxy_protocol = true
proxy_from = ["10.1.0.0/16", "192.0.2.9", "::1"]`);
    expect(c.listeners[0]).toMatchObject({ proxyProtocol: true, proxyFrom: ["10.1.0.0/16", "192.0.2.9/32", "::1/128"] });
  });
  test("metrics.listen may be empty (off) or use port 0", () => {
    expect(valid(`[metrics]\nlisten = ""`).metrics.listen).toBe("");
    expect(valid(`[metrics]\nlisten = "127.0.0.1:0"`).metrics.listen).toBe("127.0.0.1:0");
  });
});

describe("error lines", () => {
  test("unknown keys at the top level and nested, one line each", () => {
    expect(errorsOf(`foo = 1\nbar = 2`)).toEqual(["foo: unknown key", "bar: unknown key"]);
    expect(errorsOf(`[limits]\nmax_recipient = 5`)).toEqual(["limits.max_recipient: unknown key"]);
    expect(errorsOf(`[[listeners]]\nname = "mx"\nport = 25\ntlss = "none"`)).toEqual(["listeners.0.tlss: unknown key"]);
    expect(errorsOf(`[queue.extra]\nx = 1`)).toEqual(["queue.extra: unknown key"]);
  });
  test("integers", () => {
    expect(errorsOf(`[limits]\nmax_recipients = 0`)).toEqual(["limits.max_recipients: expected a positive integer"]);
    expect(errorsOf(`[limits]\nmax_recipients = "100"`)).toEqual(["limits.max_recipients: expected a positive integer"]);
    expect(errorsOf(`[limits]\nidle_timeout_s = 1.5`)).toEqual(["limits.idle_timeout_s: expected a positive integer"]);
    expect(errorsOf(`[limits]\nmax_errors = 0`)).toEqual(["limits.max_errors: expected a positive integer"]);
    expect(errorsOf(`[limits]\nerror_delay_after = "10"`)).toEqual(["limits.error_delay_after: expected a positive integer"]);
    expect(errorsOf(`[limits]\nmax_connection_rate_per_ip = -1`)).toEqual([
      "limits.max_connection_rate_per_ip: expected an integer of 0 or more",
    ]);
    expect(errorsOf(`[limits]\nmax_connection_rate_per_ip = 2.5`)).toEqual([
      "limits.max_connection_rate_per_ip: expected an integer of 0 or more",
    ]);
    expect(errorsOf(`[delivery]\nworkers = -1`)).toEqual(["delivery.workers: expected an integer from 0 to 1024"]);
  });
  test("listeners: ports, enums, required keys, duplicates", () => {
    expect(
      errorsOf(`
[[listeners]]
name = "mx"
port = 65536
[[listeners]]
name = "sub"
port = 587
tls = "ssl"
auth = "yes"
[[listeners]]
host = "not a host"`),
    ).toEqual([
      "listeners.0.port: expected a port number from 0 to 65535",
      'listeners.1.tls: expected one of "none", "starttls", "implicit"',
      'listeners.1.auth: expected one of "off", "optional", "required"',
      "listeners.2.name: is required",
      'listeners.2.host: "not a host" is not an IP address or host name',
      "listeners.2.port: is required",
    ]);
    expect(
      errorsOf(`
[[listeners]]
name = "mx"
port = 25
[[listeners]]
name = "mx"
port = 26
[[listeners]]
name = "other"
host = "0.0.0.0"
port = 25`),
    ).toEqual([
      'listeners.1.name: "mx" is already the name of listeners.0',
      "listeners.2.port: 0.0.0.0 port 25 is already used by listeners.0",
    ]);
    expect(
      errorsOf(`
[[listeners]]
name = "lb"
port = 25
proxy_protocol = "yes"
proxy_from = ["127.0.0.1/32", "10.0.0.0/33", 7]`),
    ).toEqual([
      "listeners.0.proxy_protocol: expected true or false",
      'listeners.0.proxy_from.1: "10.0.0.0/33" is not a CIDR',
      'listeners.0.proxy_from.2: expected a CIDR block such as "10.0.0.0/8"',
    ]);
    expect(errorsOf(`[[listeners]]\nname = "lb"\nport = 25\nproxy_from = "127.0.0.1"`)).toEqual([
      "listeners.0.proxy_from: expected a list of CIDR blocks",
    ]);
    expect(errorsOf(`listeners = []`)).toEqual(["listeners: expected at least one listener"]);
    expect(errorsOf(`listeners = 5`)).toEqual(["listeners: expected an array of tables ([[listeners]])"]);
  });
  test("hostname, domains and addresses", () => {
    expect(errorsOf(`hostname = "mx_1.example"`)).toEqual(['hostname: "mx_1.example" is not a valid domain name']);
    expect(errorsOf(`[local]\ndomains = ["ok.test", "bad..test"]`)).toEqual(['local.domains.1: "bad..test" is not a valid domain name']);
    expect(errorsOf(`[local.aliases]\n"postmaster" = ["a@x.test"]`)).toEqual([
      'local.aliases.postmaster: "postmaster" is not an address (expected local@domain)',
    ]);
    expect(errorsOf(`[local.aliases]\n"p@x.test" = ["a@x.test", "nobody"]`)).toEqual([
      'local.aliases.p@x.test.1: "nobody" is not an address (expected local@domain)',
    ]);
    expect(errorsOf(`[local.aliases]\n"p@x.test" = []`)).toEqual(["local.aliases.p@x.test: expected at least one target address"]);
    expect(errorsOf(`[local.aliases]\n"p@x.test" = ["a@x.test"]\n"P@X.test" = ["b@x.test"]`)).toEqual([
      'local.aliases.P@X.test: "P@X.test" repeats another key (keys are not case-sensitive)',
    ]);
  });
  test("relay: CIDRs, host:port, routes, enums", () => {
    expect(errorsOf(`[relay]\nnetworks = ["10.0.0.0/8", "10.0.0.0/33"]`)).toEqual(['relay.networks.1: "10.0.0.0/33" is not a CIDR']);
    expect(errorsOf(`[relay]\nsmarthost = "smtp.example.test"`)).toEqual([
      'relay.smarthost: "smtp.example.test" is not "host:port" or ""',
    ]);
    expect(errorsOf(`[relay.routes]\n"remote.test" = "127.0.0.1"\n"bad_domain" = "127.0.0.1:25"`)).toEqual([
      'relay.routes.remote.test: "127.0.0.1" is not "host:port"',
    ]);
    expect(errorsOf(`[relay.routes]\n"bad_domain" = "127.0.0.1:25"`)).toEqual([
      'relay.routes.bad_domain: "bad_domain" is not a valid domain name',
    ]);
    expect(errorsOf(`[relay]\nsmarthost_tls = "tls"\nmx_port = 0`)).toEqual([
      'relay.smarthost_tls: expected one of "none", "starttls", "implicit"',
      "relay.mx_port: expected a port number from 1 to 65535",
    ]);
  });
  test("directory: kind, url, and url required for postgres", () => {
    expect(valid("").directory).toEqual({ kind: "file", url: "" });
    expect(valid(`[directory]\nkind = "postgres"\nurl = "postgres://ringmta@127.0.0.1:5432/mail"`).directory).toEqual({
      kind: "postgres",
      url: "postgres://ringmta@127.0.0.1:5432/mail",
    });
    // No [local] table: the embedded catch-all would accept every local part of the database's domains; it is off.
    expect(valid(`[directory]\nkind = "postgres"\nurl = "postgres://db/mail"`).local.catchAll).toBe(false);
    expect(valid(`[directory]\nkind = "postgres"\nurl = "postgres://db/mail"\n[local]\ncatch_all = true`).local.catchAll).toBe(true);
    expect(errorsOf(`[directory]\nkind = "ldap"`)).toEqual(['directory.kind: expected one of "file", "postgres"']);
    expect(errorsOf(`[directory]\nkind = "postgres"`)).toEqual(['directory.url: is required when kind = "postgres"']);
    expect(errorsOf(`[directory]\nurl = "mysql://x/y"`)).toEqual([
      'directory.url: "mysql://x/y" is not a PostgreSQL URL (expected postgres://user@host/database)',
    ]);
    expect(errorsOf(`[directory]\nhost = "db"`)).toEqual(["directory.host: unknown key"]);
  });
  test("durations", () => {
    expect(errorsOf(`[queue]\nretry_intervals = ["1m", "5m", "5x"]`)).toEqual([
      'queue.retry_intervals.2: "5x" is not a duration (use e.g. 30s, 5m, 2h, 5d)',
    ]);
    expect(errorsOf(`[queue]\nretry_intervals = []`)).toEqual(["queue.retry_intervals: expected at least one duration"]);
    expect(errorsOf(`[queue]\nmax_age = 5`)).toEqual(['queue.max_age: expected a duration such as "30s", "5m", "2h" or "5d"']);
    expect(errorsOf(`[limits]\nauth_ip_block = "0s"`)).toEqual(['limits.auth_ip_block: "0s" is too short (expected more than zero)']);
  });
  test("sizes", () => {
    expect(errorsOf(`[limits]\nmax_message_size = 1000`)).toEqual(["limits.max_message_size: expected at least 1024 bytes"]);
    expect(errorsOf(`[limits]\nmax_message_size = "25XB"`)).toEqual([
      'limits.max_message_size: "25XB" is not a size (use e.g. 26214400, "25MB" or "25MiB")',
    ]);
    expect(errorsOf(`[limits]\nmax_message_size = true`)).toEqual([
      'limits.max_message_size: expected a size in bytes, such as 26214400, "25MB" or "25MiB"',
    ]);
  });
  test("dns servers, metrics listen, types of tables and strings", () => {
    expect(errorsOf(`[dns]\nservers = ["ns.example.test"]`)).toEqual(['dns.servers.0: "ns.example.test" is not "ip" or "ip:port"']);
    expect(errorsOf(`[metrics]\nlisten = "9025"`)).toEqual(['metrics.listen: "9025" is not "host:port" or ""']);
    expect(errorsOf(`server = "root"`)).toEqual(["server: expected a table"]);
    expect(errorsOf(`[server]\nuser = 0`)).toEqual(["server.user: expected a string"]);
    expect(errorsOf(`[local]\ncatch_all = "yes"`)).toEqual(["local.catch_all: expected true or false"]);
    expect(errorsOf(`data_dir = ""`)).toEqual(["data_dir: expected a non-empty string"]);
  });
  test("local.delivery and local.lmtp: lmtp required with delivery = \"lmtp\"; unix paths resolve", () => {
    expect(errorsOf(`[local]\ndelivery = "lmtp"`)).toEqual(['local.lmtp: required when local.delivery = "lmtp"']);
    expect(errorsOf(`[local]\ndelivery = "mbox"`)).toEqual(['local.delivery: expected one of "maildir", "lmtp"']);
    expect(errorsOf(`[local]\ndelivery = "lmtp"\nlmtp = "dovecot"`)).toEqual([
      'local.lmtp: "dovecot" is not "unix:/path/to/socket" or "host:port"',
    ]);
    const base = "/etc/ringmta";
    const unix = ok(validateConfig(parse(`[local]\ndelivery = "lmtp"\nlmtp = "unix:run/lmtp"`), base, null)).local;
    expect(unix).toMatchObject({ delivery: "lmtp", lmtp: "unix:/etc/ringmta/run/lmtp" });
    const tcp = ok(validateConfig(parse(`[local]\ndelivery = "lmtp"\nlmtp = "127.0.0.1:24"`), base, null)).local;
    expect(tcp).toMatchObject({ delivery: "lmtp", lmtp: "127.0.0.1:24" });
    expect(ok(validateConfig(parse(`[local]\ndomains = []`), base, null)).local).toMatchObject({ delivery: "maildir", lmtp: "" });
  });
  test("[dkim]: sign and selectors per domain, errors naming the key path", () => {
    expect(valid(`[dkim]\nsign = false`).dkim).toEqual({ sign: false, selectors: {} });
    expect(valid(`[dkim.selectors]\n"Example.TEST" = ["rsa2026", "ed_1", "rsa2026"]`).dkim.selectors).toEqual({
      "example.test": ["rsa2026", "ed_1"],
    });
    expect(errorsOf(`[dkim.selectors]\n"example.test" = []`)).toEqual(["dkim.selectors.example.test: expected at least one selector"]);
    expect(errorsOf(`[dkim.selectors]\n"example.test" = ["../x"]`)).toEqual([
      'dkim.selectors.example.test.0: "../x" is not a selector (letters, digits, "-", "_", dot-separated labels)',
    ]);
    expect(errorsOf(`[dkim.selectors]\n"bad domain" = ["s"]`)).toEqual(['dkim.selectors.bad domain: "bad domain" is not a valid domain name']);
    expect(errorsOf(`[dkim]\nsign = "yes"\nkeys = 1`)).toEqual(["dkim.sign: expected true or false", "dkim.keys: unknown key"]);
  });
  test("every problem is reported, not just the first", () => {
    expect(errorsOf(`hostname = "-"\n[limits]\nmax_hops = 0\n[metrics]\nport = 1`)).toHaveLength(3);
  });
});

describe("[defence] and [[rate_limits]]", () => {
  test("absent: no defence, no limits", () => {
    const c = valid(`hostname = "mx.example.test"`);
    expect(c.defence).toEqual({ dnsbl: [], dnswl: [], pregreetMs: 0, greylist: false, greylistDelayMs: 300_000 });
    expect(c.rateLimits).toEqual([]);
  });
  test("the CONTRACT's keys convert to ms, counts and lower-case zones", () => {
    const c = valid(`
[defence]
dnsbl = ["Zen.Spamhaus.org", "bl.test."]
dnswl = ["list.dnswl.org"]
pregreet_ms = 3000
greylist = "on"
greylist_delay = "2s"

[[rate_limits]]
key = "ip"
rate = "60/1m"

[[rate_limits]]
key = "auth_user"
rate = "500/1d"
`);
    expect(c.defence).toEqual({
      dnsbl: ["zen.spamhaus.org", "bl.test"],
      dnswl: ["list.dnswl.org"],
      pregreetMs: 3000,
      greylist: true,
      greylistDelayMs: 2000,
    });
    expect(c.rateLimits).toEqual([
      { key: "ip", rate: "60/1m", count: 60, windowMs: 60_000 },
      { key: "auth_user", rate: "500/1d", count: 500, windowMs: 86_400_000 },
    ]);
  });
  test("errors name the key path", () => {
    expect(errorsOf(`[[rate_limits]]\nkey = "ip"\nrate = "0/1m"`)).toEqual([
      'rate_limits.0.rate: "0/1m" is not a rate (expected "N/window" with N > 0, e.g. "60/1m")',
    ]);
    expect(errorsOf(`[[rate_limits]]\nkey = "ip"\nrate = "60/1m"\n[[rate_limits]]\nkey = "helo"\nrate = "60"`)).toEqual([
      'rate_limits.1.key: expected one of "ip", "sender", "sender_domain", "recipient", "auth_user"',
      'rate_limits.1.rate: "60" is not a rate (expected "N/window" with N > 0, e.g. "60/1m")',
    ]);
    expect(errorsOf(`[[rate_limits]]\nkey = "ip"`)).toEqual(["rate_limits.0.rate: is required"]);
    expect(errorsOf(`[[rate_limits]]\nkey = "ip"\nrate = "1/1m"\nburst = 3`)).toEqual(["rate_limits.0.burst: unknown key"]);
    expect(errorsOf(`[defence]\ndnsbl = ["not a zone"]`)).toEqual(['defence.dnsbl.0: "not a zone" is not a DNS zone']);
    expect(errorsOf(`[defence]\ngreylist = true`)).toEqual(['defence.greylist: expected one of "off", "on"']);
    expect(errorsOf(`[defence]\ngreylist_delay = "5 minutes"`)).toEqual([
      'defence.greylist_delay: "5 minutes" is not a duration (use e.g. 30s, 5m, 2h, 5d)',
    ]);
    expect(errorsOf(`[defence]\npregreet_ms = -1`)).toEqual(["defence.pregreet_ms: expected an integer from 0 to 60000 (milliseconds)"]);
  });
});
