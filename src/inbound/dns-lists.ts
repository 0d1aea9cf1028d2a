/**
 * DNS blocklists and allowlists (RFC 5782): the client's address reversed (IPv4 octets, IPv6 nibbles, §2.1 and
 * §2.4) under each zone, asked for A records once per connection, every zone in parallel, within a time budget.
 *
 * What an answer means:
 * - blocklist: an address in 127.0.0.2–127.0.0.255 lists the client (§2.3; 127.0.0.1 is never a listing, §5).
 * - allowlist: any 127.0.0.0/8 address other than 127.0.0.1 (list.dnswl.org answers 127.0.<category>.<trust>).
 * - either: an address in 127.255.255.0/24 is the list refusing our query (Spamhaus: a public resolver, a typo,
 *   too many queries): logged as an error, never a listing; other addresses are ignored.
 * - NXDOMAIN / no A record: not listed. A timeout or SERVFAIL fails open: not listed, logged.
 */
import { reverseName, type DnsLookup } from "../dns/index.ts";
import { plainAddress } from "./client-address.ts";
import type { DefenceLog } from "./report.ts";

export type ListLookupStatus = "ok" | "nxdomain" | "nodata" | "servfail" | "timeout";

/** The one question DNS lists need answered; stage logic is tested against small fakes of it. */
export interface ListLookup {
  lookupA(name: string): Promise<{ status: ListLookupStatus; addresses: string[] }>;
}

/** The port over our resolver (dns/). */
export function listLookupOf(dns: DnsLookup): ListLookup {
  return {
    lookupA: (name) => dns.lookup(name, "A").then((r) => ({ status: r.status, addresses: r.records })),
  };
}

export type ZoneAnswer =
  | { zone: string; kind: "listed"; code: string }
  | { zone: string; kind: "clean" }
  | { zone: string; kind: "refused"; code: string }
  | { zone: string; kind: "failed"; status: "servfail" | "timeout" };

export interface ListResult {
  /** The first blocklist zone (in config order) that lists the client, or null. */
  blockedBy: { zone: string; code: string } | null;
  /** The first allowlist zone that lists the client, or null. */
  allowedBy: string | null;
}

const NOT_LISTED: ListResult = { blockedBy: null, allowedBy: null };

function octets(a: string): number[] | null {
  const p = a.split(".");
  if (p.length !== 4) return null;
  const n = p.map(Number);
  return n.every((x) => Number.isInteger(x) && x >= 0 && x <= 255) ? n : null;
}

/** What one zone's answer says (RFC 5782 §2.3), for a blocklist or an allowlist. */
export function classify(
  zone: string,
  allowlist: boolean,
  answer: { status: ListLookupStatus; addresses: string[] },
): ZoneAnswer {
  if (answer.status === "servfail" || answer.status === "timeout") return { zone, kind: "failed", status: answer.status };
  if (answer.status !== "ok") return { zone, kind: "clean" };
  let refused: string | null = null;
  for (const a of answer.addresses) {
    const o = octets(a);
    if (o === null || o[0] !== 127) continue;
    if (o[1] === 255 && o[2] === 255) {
      refused ??= a;
      continue;
    }
    const listing = allowlist ? !(o[1] === 0 && o[2] === 0 && o[3] === 1) : o[1] === 0 && o[2] === 0 && o[3]! >= 2;
    if (listing) return { zone, kind: "listed", code: a };
  }
  return refused !== null ? { zone, kind: "refused", code: refused } : { zone, kind: "clean" };
}

export interface DnsListsDeps {
  lookup: ListLookup;
  /** Resolves after ms (the time budget; one timer per connection). */
  sleep(ms: number): Promise<void>;
  /** All zones of one connection must answer within this; the rest count as timed out. Default 2000 ms. */
  budgetMs?: number;
  log: DefenceLog;
}

/** One connection's lookups: the promise, and its result once known (so later hooks can answer synchronously). */
export interface ClientLists {
  readonly promise: Promise<ListResult>;
  /** undefined until every zone answered or the budget ran out. */
  result: ListResult | undefined;
}

/**
 * Looks clients up, once per connection: the DNSBL, pregreet and greylisting stages all ask `forSession` with the
 * session's view, and the first call starts the lookups (at connect, so that pregreet has the allowlist's answer
 * before the banner).
 */
export class DnsLists {
  private readonly sessions = new WeakMap<object, ClientLists>();
  private readonly budgetMs: number;

  constructor(private readonly deps: DnsListsDeps) {
    this.budgetMs = deps.budgetMs ?? 2000;
  }

  /** The lookups of the connection whose view is `view` (started on the first call). */
  forSession(view: { readonly clientAddress: string }, blocklists: readonly string[], allowlists: readonly string[]): ClientLists {
    let c = this.sessions.get(view);
    if (c === undefined) {
      const entry: ClientLists = { promise: this.check(view.clientAddress, blocklists, allowlists), result: undefined };
      void entry.promise.then((r) => (entry.result = r));
      this.sessions.set(view, entry);
      c = entry;
    }
    return c;
  }

  /** Every zone asked in parallel; whatever has not answered within the budget counts as a timeout (fail open). */
  async check(client: string, blocklists: readonly string[], allowlists: readonly string[]): Promise<ListResult> {
    if (blocklists.length === 0 && allowlists.length === 0) return NOT_LISTED;
    const ip = plainAddress(client);
    const budget = this.deps.sleep(this.budgetMs).then(() => ({ status: "timeout" as const, addresses: [] }));
    const ask = (zone: string, allow: boolean): Promise<ZoneAnswer> => {
      const name = reverseName(ip, zone);
      if (name === null) return Promise.resolve({ zone, kind: "clean" });
      const answer = this.deps.lookup.lookupA(name).catch(() => ({ status: "servfail" as const, addresses: [] }));
      return Promise.race([answer, budget]).then((a) => classify(zone, allow, a));
    };
    const [bl, wl] = await Promise.all([
      Promise.all(blocklists.map((z) => ask(z, false))),
      Promise.all(allowlists.map((z) => ask(z, true))),
    ]);
    let blockedBy: ListResult["blockedBy"] = null;
    let allowedBy: string | null = null;
    for (const [answers, allow] of [[bl, false], [wl, true]] as const) {
      for (const a of answers) {
        switch (a.kind) {
          case "listed":
            if (allow) allowedBy ??= a.zone;
            else blockedBy ??= { zone: a.zone, code: a.code };
            break;
          case "refused":
            this.deps.log.error("defence.dnsl_refused", {
              client,
              zone: a.zone,
              answer: a.code,
              note: "the list refuses our queries (127.255.255.0/24); not a listing",
            });
            break;
          case "failed":
            this.deps.log.warn("defence.dnsl_failed", { client, zone: a.zone, status: a.status, note: "accepted (fail open)" });
            break;
          case "clean":
            break;
        }
      }
    }
    return blockedBy === null && allowedBy === null ? NOT_LISTED : { blockedBy, allowedBy };
  }
}
