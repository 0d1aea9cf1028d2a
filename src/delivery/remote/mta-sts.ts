/**
 * MTA-STS (RFC 8461): a domain's `_mta-sts` TXT record announces a policy id (§3.1); the policy itself comes over
 * HTTPS from `https://mta-sts.<domain>/.well-known/mta-sts.txt` (§3.3): port 443, the certificate verified for that
 * name (system CAs plus relay.tls_ca), no redirects (§3.3), at most 64 KiB and a bounded time. Policies are cached
 * for max_age (§5.1) in one JSON file per domain under DATA/mta-sts/, so they survive a restart and a SIGHUP; a new
 * id in DNS makes us fetch again. When the TXT lookup or the fetch fails, a cached policy that has not expired
 * still applies (§5.1: this is what makes a downgrade by DNS or HTTPS interference fail).
 */
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { isIP } from "node:net";
import { rootCertificates } from "node:tls";
import { join } from "node:path";
import { mergeAddresses, type DnsLookup } from "../../dns/index.ts";

export interface StsPolicy {
  mode: "enforce" | "testing" | "none";
  /** Lower-case patterns: "mx.example.com" or "*.example.com" (§3.2). */
  mx: string[];
  /** Seconds (§3.2: at most 31557600). */
  maxAge: number;
}

/** What the Router asks: the policy in force for a domain now, or null (none, or MTA-STS off). */
export interface StsSource {
  policy(domain: string): Promise<StsPolicy | null>;
  /**
   * When the domain announces a policy (TXT) that could not be had lately: the RFC 8460 §4.3.2.1 result type
   * (sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid) for TLS-RPT; else undefined.
   */
  lastError?(domain: string): string | undefined;
}

/** After a failed fetch, the domain is not fetched again for this long (each delivery would wait for it). */
const FETCH_BACKOFF_MS = 5 * 60_000;

type FetchResult = { policy: StsPolicy } | { error: "sts-policy-fetch-error" | "sts-policy-invalid" | "sts-webpki-invalid" };

/** §3.3: policy bodies beyond this are refused. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** §3.2: max_age is at most a year. */
const MAX_AGE_LIMIT = 31_557_600;
/** Domains remembered in memory per worker (policies and absences); then the memo starts over from the files. */
const MAX_MEMO = 10_000;
/** More mx patterns than any real policy has; the rest are ignored, so matching stays cheap. */
const MAX_MX = 100;

/** §3.2: "key: value" lines; unknown keys ignored; version, mode and max_age required. Null: not a policy. */
export function parsePolicy(text: string): StsPolicy | null {
  let version = "";
  let mode = "";
  let maxAge = -1;
  const mx: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const colon = raw.indexOf(":");
    if (colon <= 0) continue;
    const key = raw.slice(0, colon).trim();
    const value = raw.slice(colon + 1).trim();
    if (key === "version") version = value;
    else if (key === "mode") mode = value;
    else if (key === "max_age" && /^\d{1,10}$/.test(value)) maxAge = Math.min(Number(value), MAX_AGE_LIMIT);
    else if (key === "mx" && mx.length < MAX_MX && /^(\*\.)?[A-Za-z0-9.-]+$/.test(value)) mx.push(value.toLowerCase().replace(/\.$/, ""));
  }
  if (version !== "STSv1" || maxAge < 0) return null;
  if (mode !== "enforce" && mode !== "testing" && mode !== "none") return null;
  return { mode, mx, maxAge };
}

/** §4.1: a pattern matches the MX host exactly, or "*.rest" matches one extra left-most label. */
export function mxMatches(patterns: readonly string[], host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return patterns.some((p) => {
    if (!p.startsWith("*.")) return p === h;
    const dot = h.indexOf(".");
    return dot > 0 && h.slice(dot + 1) === p.slice(2);
  });
}

/** §3.1: "v=STSv1; id=..." → the id, or null when the record is not an STS record. */
export function parseStsTxt(records: readonly string[]): string | null {
  const sts = records.filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (sts.length !== 1) return null; // §3.1: several records: as if none
  const m = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(;|$)/.exec(sts[0]);
  return m === null ? null : m[1];
}

interface Cached {
  id: string;
  policy: StsPolicy;
  /** ms since the epoch. */
  fetched: number;
}

export interface MtaStsOptions {
  /** DATA/mta-sts: one file per domain. */
  dir: string;
  dns: DnsLookup;
  /** PEM of extra CAs (relay.tls_ca), "" = the system's only. */
  ca: string;
  /** Whole-fetch time limit; default 10 s. */
  timeoutMs?: number;
  /** The port of the policy host; 443 (tests may not change it: §3.3). */
  port?: number;
  now?: () => number;
}

/** The worker's MTA-STS policies: in memory, backed by DATA/mta-sts/<domain>.json. */
export class MtaStsCache implements StsSource {
  /** null: no file for the domain (checked once; a fetch that succeeds replaces it). */
  private readonly mem = new Map<string, Cached | null>();
  private readonly inflight = new Map<string, Promise<StsPolicy | null>>();
  /** Domains whose last fetch failed: the result type and until when no new fetch is tried. */
  private readonly failed = new Map<string, { type: string; until: number }>();
  private readonly now: () => number;

  constructor(private readonly o: MtaStsOptions) {
    this.now = o.now ?? Date.now;
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  }

  policy(domain: string): Promise<StsPolicy | null> {
    const d = domain.toLowerCase();
    const running = this.inflight.get(d);
    if (running !== undefined) return running;
    const p = this.resolve(d).finally(() => this.inflight.delete(d));
    this.inflight.set(d, p);
    return p;
  }

  private async resolve(domain: string): Promise<StsPolicy | null> {
    const cached = this.load(domain);
    const fresh = cached !== null && this.now() < cached.fetched + cached.policy.maxAge * 1000 ? cached : null;
    const txt = await this.o.dns.lookup(`_mta-sts.${domain}`, "TXT");
    const id = txt.status === "ok" ? parseStsTxt(txt.records) : null;
    // No (readable) record: a cached policy still applies until it expires (§5.1); else there is none.
    if (id === null) return fresh?.policy ?? null;
    if (fresh !== null && fresh.id === id) return fresh.policy;
    const f = this.failed.get(domain);
    if (f !== undefined && this.now() < f.until) return fresh?.policy ?? null;
    const got = await this.fetch(domain);
    if ("error" in got) {
      if (this.failed.size >= MAX_MEMO) this.failed.clear();
      this.failed.set(domain, { type: got.error, until: this.now() + FETCH_BACKOFF_MS });
      return fresh?.policy ?? null;
    }
    this.failed.delete(domain);
    this.store(domain, { id, policy: got.policy, fetched: this.now() });
    return got.policy;
  }

  lastError(domain: string): string | undefined {
    const f = this.failed.get(domain.toLowerCase());
    return f !== undefined && this.now() < f.until ? f.type : undefined;
  }

  private file(domain: string): string {
    // A domain is a DNS name, but never let it shape a path: the file is named by its hash.
    return join(this.o.dir, `${createHash("sha256").update(domain).digest("hex").slice(0, 32)}.json`);
  }

  private load(domain: string): Cached | null {
    const hit = this.mem.get(domain);
    if (hit !== undefined) return hit;
    if (this.mem.size >= MAX_MEMO) this.mem.clear();
    this.mem.set(domain, null);
    try {
      const c = JSON.parse(readFileSync(this.file(domain), "utf8")) as Cached & { domain?: string };
      if (c.domain !== domain || typeof c.id !== "string" || typeof c.fetched !== "number") return null;
      const policy = parsePolicy(`version: STSv1\nmode: ${c.policy.mode}\nmax_age: ${c.policy.maxAge}\n${c.policy.mx.map((m) => `mx: ${m}`).join("\n")}`);
      if (policy === null) return null;
      const entry = { id: c.id, policy, fetched: c.fetched };
      this.mem.set(domain, entry);
      return entry;
    } catch {
      return null;
    }
  }

  private store(domain: string, c: Cached): void {
    this.mem.set(domain, c);
    const f = this.file(domain);
    try {
      // Every worker thread writes here: a unique temporary name, then an atomic rename.
      const tmp = `${f}.${randomBytes(6).toString("hex")}.tmp`;
      writeFileSync(tmp, JSON.stringify({ domain, ...c }), { mode: 0o600 });
      renameSync(tmp, f);
    } catch {
      // Memory still holds it; the next fetch writes the file again.
    }
  }

  /** The policy of `domain`, or null on any failure (never thrown). */
  async fetchPolicy(domain: string): Promise<StsPolicy | null> {
    const r = await this.fetch(domain);
    return "policy" in r ? r.policy : null;
  }

  private async fetch(domain: string): Promise<FetchResult> {
    const host = `mta-sts.${domain}`;
    const addrs = mergeAddresses(await this.o.dns.lookup(host, "A"), await this.o.dns.lookup(host, "AAAA"));
    if (addrs.status !== "ok" || addrs.records.length === 0) return { error: "sts-policy-fetch-error" };
    const got = await fetchText(addrs.records[0], host, this.o.port ?? 443, this.o.ca, this.o.timeoutMs ?? 10_000);
    if (typeof got !== "string") return { error: got.error };
    const policy = parsePolicy(got);
    return policy === null ? { error: "sts-policy-invalid" } : { policy };
  }
}

/** An X.509 verification failure (OpenSSL's names, Node's ERR_TLS_CERT_ALTNAME_INVALID), not a transport one. */
function isCertificateError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (code === "ERR_TLS_CERT_ALTNAME_INVALID" || /CERT|SELF_SIGNED|UNABLE_TO_|ISSUER/.test(code))) return true;
  return /certificate/i.test(String((err as Error | null)?.message ?? ""));
}

/** GET the policy from `address` as `host`: verified TLS, 200 only (no redirects), ≤ 64 KiB, within `timeoutMs`. */
type FetchError = { error: "sts-policy-fetch-error" | "sts-webpki-invalid" };
const FETCH_ERROR: FetchError = { error: "sts-policy-fetch-error" };

function fetchText(address: string, host: string, port: number, ca: string, timeoutMs: number): Promise<string | FetchError> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: string | FetchError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(v);
    };
    const req = request({
      host: address,
      port,
      path: "/.well-known/mta-sts.txt",
      method: "GET",
      servername: isIP(host) ? undefined : host,
      headers: { Host: host, Accept: "text/plain" },
      ca: ca === "" ? undefined : [...rootCertificates, ca],
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
      agent: false,
    });
    const timer = setTimeout(() => finish(FETCH_ERROR), timeoutMs);
    req.on("error", (err) => finish(isCertificateError(err) ? { error: "sts-webpki-invalid" } : FETCH_ERROR));
    req.on("response", (res) => {
      // §3.3: no redirects; the media type is text/plain.
      const type = String(res.headers["content-type"] ?? "");
      if (res.statusCode !== 200 || !/^text\/plain\b/i.test(type)) return finish(FETCH_ERROR);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_POLICY_BYTES) return finish(FETCH_ERROR);
        chunks.push(c);
      });
      res.on("end", () => finish(Buffer.concat(chunks).toString("utf8")));
      res.on("error", () => finish(FETCH_ERROR));
    });
    req.end();
  });
}
