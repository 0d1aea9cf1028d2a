/**
 * Third-party programs the e2e suite talks to. A test that needs one is skipped when it is missing, with the
 * Debian package to install in its title; under RINGMTA_REQUIRE_PEERS=1 (CI) a missing program fails the test.
 */
import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { test, type TestContext } from "vitest";

export type Peer =
  | "swaks"
  | "smtp-source"
  | "smtp-sink"
  | "python3"
  | "openssl"
  | "dovecot"
  | "lmtp"
  | "dnsmasq"
  | "postfix"
  | "unbound"
  | "ldns-keygen"
  | "ldns-signzone"
  | "dkimverify"
  | "opendkim"
  | "haproxy"
  | "initdb"
  | "dovecot-pgsql"
  | "authres"
  | "pyspf";

/** Debian package that brings each program (the ones .ci/run installs). */
export const PEER_PACKAGE: Record<Peer, string> = {
  swaks: "swaks",
  "smtp-source": "postfix",
  "smtp-sink": "postfix",
  python3: "python3",
  openssl: "openssl",
  dovecot: "dovecot-imapd",
  lmtp: "dovecot-lmtpd", // Dovecot's LMTP service, /usr/lib/dovecot/lmtp
  dnsmasq: "dnsmasq-base",
  postfix: "postfix",
  unbound: "unbound",
  "ldns-keygen": "ldnsutils",
  "ldns-signzone": "ldnsutils",
  dkimverify: "python3-dkim",
  opendkim: "opendkim",
  haproxy: "haproxy",
  initdb: "postgresql",
  "dovecot-pgsql": "dovecot-pgsql",
  authres: "python3-authres", // a module of Debian's /usr/bin/python3 (dkimpy's ARC signing needs it too)
  pyspf: "python3-spf", // pyspf, the SPF oracle: a module of Debian's /usr/bin/python3, not a program
};

/** Not on PATH: PostgreSQL's server programs live in /usr/lib/postgresql/<major>/bin (newest major wins). */
const PG_BIN = "/usr/lib/postgresql";
/** Dovecot's PostgreSQL driver is a module, not a program. */
const DOVECOT_PGSQL = "/usr/lib/dovecot/modules/auth/libdriver_pgsql.so";
/** python3-authres is a Python module, not a program. */
const AUTHRES = "/usr/lib/python3/dist-packages/authres/__init__.py";
/** pyspf is a module of Debian's python (the python3 on PATH may be another one without Debian's modules). */
const PYSPF = "/usr/lib/python3/dist-packages/spf.py";
export const DEBIAN_PYTHON = "/usr/bin/python3";

const found = new Map<Peer, string | null>();

/** Absolute path of the program, or null. Postfix tools live in /usr/sbin, which a non-root PATH may lack. */
export function peerPath(name: Peer): string | null {
  const cached = found.get(name);
  if (cached !== undefined) return cached;
  // Modules, not programs: Dovecot's PostgreSQL driver, and Python modules of Debian's /usr/bin/python3.
  if (name === "dovecot-pgsql" || name === "authres" || name === "pyspf") {
    const file = name === "authres" ? AUTHRES : name === "pyspf" ? PYSPF : DOVECOT_PGSQL;
    const hit = existsSync(file) && (name === "dovecot-pgsql" || existsSync(DEBIAN_PYTHON)) ? file : null;
    found.set(name, hit);
    return hit;
  }
  const pg = existsSync(PG_BIN)
    ? readdirSync(PG_BIN)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => join(PG_BIN, v, "bin"))
    : [];
  // Dovecot's services (lmtp) live in /usr/lib/dovecot, which no PATH names.
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/lib/dovecot", ...pg];
  let hit: string | null = null;
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, name), constants.X_OK);
      hit = join(d, name);
      break;
    } catch {
      // not in this directory
    }
  }
  found.set(name, hit);
  return hit;
}

export function havePeer(name: Peer): boolean {
  return peerPath(name) !== null;
}

export function peerInstallHint(name: Peer): string {
  return `install with: apt-get install -y ${PEER_PACKAGE[name]}`;
}

/**
 * A test that needs `name` (or every program of a list). Missing peer: skipped, its title ending " (skipped:
 * install with: apt-get install -y PKG)"; with RINGMTA_REQUIRE_PEERS=1 it runs and fails with that hint instead.
 */
export function peerTest(
  name: Peer | Peer[],
  title: string,
  fn: (ctx: TestContext) => unknown,
  timeoutMs?: number,
): void {
  const missing = (Array.isArray(name) ? name : [name]).find((n) => !havePeer(n));
  if (missing === undefined) {
    test(title, fn, timeoutMs);
  } else if (process.env.RINGMTA_REQUIRE_PEERS === "1") {
    test(title, () => {
      throw new Error(`${missing} not found and RINGMTA_REQUIRE_PEERS=1: ${peerInstallHint(missing)}`);
    });
  } else {
    test(`${title} (skipped: ${peerInstallHint(missing)})`, (ctx) => ctx.skip(`${missing} not found`));
  }
}
