/**
 * The inbound stages as the composition root orders them (ARCHITECTURE "inbound/"): loop detection first (it reads
 * limits.max_hops at each message), then the MX defences of [defence] and [[rate_limits]] — a permanent refusal
 * (DNSBL) before a deferral (greylisting) before a rate-limit charge — then whatever the embedder adds. Their
 * settings are read at each connection, so SIGHUP applies to new ones; DKIM signing comes last of the built-in
 * stages (it signs what the client sent; what later stages prepend is not covered); rate-limit counts of an unchanged entry and
 * the greylisting state live across reloads. Wiring only: what each stage does is inbound/'s business.
 */
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import { DkimSigning, type DkimKeyring } from "../dkim/index.ts";
import { Resolver } from "../dns/index.ts";
import {
  authChecksStage,
  DnsLists,
  dkimSignStage,
  dnsblStage,
  GreylistFile,
  GreylistStore,
  greylistStage,
  hopCounterStage,
  listLookupOf,
  pregreetStage,
  RateLimiter,
  rateLimitStage,
  type DefenceDeps,
  type FleetCounters,
  type RateLimitEntry,
} from "../inbound/index.ts";
import { SpfMemo, type ArcSealer } from "../checks/index.ts";
import { splitAddress, type SessionView, type Stage, type StageTransaction } from "../mail/index.ts";
import type { Logger } from "../observe/index.ts";
import type { Policy } from "../policy/index.ts";
import type { DsnSigner } from "../queue/index.ts";

/** Greylisting state is written this often (and at shutdown), never per message. */
const GREYLIST_SAVE_MS = 5000;
/** All DNS list answers of a connection within this (RFC 5782 lists answer in milliseconds; a slow one fails open). */
const DNS_LIST_BUDGET_MS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The [[rate_limits]] of `c`, keeping the limiter (and its counts) of each entry whose key and rate are unchanged. */
function rateLimitEntries(c: Config, old: readonly RateLimitEntry[]): RateLimitEntry[] {
  const spare = [...old];
  return c.rateLimits.map((r) => {
    const i = spare.findIndex((e) => e.key === r.key && e.rate === r.rate);
    if (i >= 0) return spare.splice(i, 1)[0]!;
    return { key: r.key, rate: r.rate, limiter: new RateLimiter({ count: r.count, windowMs: r.windowMs }) };
  });
}

/**
 * CONTRACT "Forwarding": with [srs] on, a transaction with an alias target outside the local domains is
 * forwarded mail, ARC-sealed with the SRS domain's first selector (its key, or its nearest parent's, in the
 * keyring). Null when SRS is off, nothing is forwarded, or no key applies.
 */
function forwardSealer(c: Config, keyring: DkimKeyring, domains: ReadonlySet<string> | null, tx: StageTransaction): ArcSealer | null {
  if (c.srs.secret === "" || domains === null) return null;
  const forwards = tx.recipients.some((r) => domains.has(r.domain.toLowerCase()) && r.targets.some((t) => !domains.has(splitAddress(t).domain.toLowerCase())));
  if (!forwards) return null;
  const srsDomain = c.srs.domain !== "" ? c.srs.domain : [...domains][0];
  if (srsDomain === undefined) return null;
  const key = keyring.forDomain(srsDomain)[0];
  return key === undefined ? null : { domain: key.domain, selector: key.selector, key: key.key };
}

export interface InboundStages {
  readonly stages: ReadonlyArray<Stage>;
  /** Load the greylisting state of the last run and start saving it (as the unprivileged user: it is under DATA). */
  start(): void;
  /** SIGHUP: the new config's rate limits and DNS servers, and its DKIM keys (already loaded and checked). */
  reload(next: Config, keyring: DkimKeyring): void;
  /** Shutdown: save the greylisting state once more. */
  stop(): void;
  /** A signer for one of our DSNs (CONTRACT "DKIM"), or null when [dkim] sign is off or no key applies. */
  dsnSigner(): DsnSigner | null;
}

export function buildStages(o: {
  config: () => Config;
  policy: () => Policy;
  log: Logger;
  defenceReject: (reason: string) => void;
  dkimSigned: (domain: string) => void;
  authCheck: (check: string, result: string) => void;
  /** The local domains now (the directory's; null while it is unavailable), to tell a forward from a delivery. */
  localDomains: () => ReadonlySet<string> | null;
  /** The keys of config.dkim.selectors (CONTRACT: a bad key is a config error, found before this). */
  keyring: DkimKeyring;
  extra: ReadonlyArray<Stage>;
  /** kind = "postgres": rate limits and greylisting counted over the fleet through the database. */
  fleet?: FleetCounters | null;
}): InboundStages {
  const { log } = o;
  const initial = o.config();
  let resolver = new Resolver({ servers: initial.dns.servers });
  const lists = new DnsLists({
    lookup: listLookupOf({ lookup: (name, type, opts) => resolver.lookup(name, type, opts) }),
    sleep,
    budgetMs: DNS_LIST_BUDGET_MS,
    log,
  });
  const defence: DefenceDeps = {
    settings: () => o.config().defence,
    // CONTRACT: the defences are for MX sessions; relay.networks and listeners where AUTH is required are exempt.
    trusted: (view: SessionView) =>
      o.config().listeners.find((l) => l.name === view.listener)?.auth === "required" || o.policy().inRelayNetworks(view.clientAddress),
    lists,
    report: (reason, fields) => {
      o.defenceReject(reason);
      log.info("defence.reject", { reason, ...fields });
    },
  };
  let rateLimits = rateLimitEntries(initial, []);
  const greylist = new GreylistStore();
  const file = new GreylistFile(join(initial.dataDir, "greylist.db"));
  const save = (): void => {
    try {
      file.save(greylist, Date.now());
    } catch (err) {
      log.error("greylist.save_failed", { file: file.path, error: String(err) });
    }
  };
  let saver: ReturnType<typeof setInterval> | null = null;
  let keyring = o.keyring;
  const dkimSign = dkimSignStage({
    keyring: () => (o.config().dkim.sign ? keyring : null),
    // Authenticated, or inside relay.networks: the sessions whose mail we vouch for.
    trusted: (view) => o.policy().mayRelay({ clientAddress: view.clientAddress, authUser: view.authUser }),
    now: Date.now,
    report: (outcome, view) => {
      if (outcome.kind === "signed") o.dkimSigned(outcome.domain);
      else if (outcome.reason !== "no-selectors") {
        log.warn("dkim.unsigned", { reason: outcome.reason, client: view.clientAddress, user: view.authUser });
      }
    },
  });
  let spfMemo = new SpfMemo();
  const authChecks = authChecksStage({
    switches: () => o.config().checks,
    // CONTRACT: checks never apply to (nor reject) authenticated or relay.networks sessions.
    checked: (view) => view.authUser === undefined && !o.policy().inRelayNetworks(view.clientAddress),
    authservId: () => o.config().hostname,
    dns: () => resolver,
    spf: (q, dns, receiver) => spfMemo.peek(q) ?? spfMemo.check(q, dns, { receiver }),
    sealer: (tx) => forwardSealer(o.config(), keyring, o.localDomains(), tx),
    now: Date.now,
    counted: o.authCheck,
  });
  const stages: Stage[] = [
    hopCounterStage(() => o.config().limits.maxHops),
    dnsblStage(defence),
    pregreetStage(defence, sleep),
    greylistStage(defence, greylist, Date.now, () => o.fleet ?? null),
    rateLimitStage(() => rateLimits, defence.report, Date.now, () => o.fleet ?? null),
    authChecks,
    dkimSign,
    ...o.extra,
  ];
  return {
    stages,
    start() {
      try {
        const text = file.read();
        if (text !== null) {
          const r = greylist.load(text, Date.now());
          log.info("greylist.loaded", { file: file.path, triples: r.loaded, bad_lines: r.bad });
        }
      } catch (err) {
        log.error("greylist.load_failed", { file: file.path, error: String(err), note: "starting with no state" });
      }
      saver = setInterval(save, GREYLIST_SAVE_MS);
    },
    reload(next, nextKeyring) {
      keyring = nextKeyring;
      rateLimits = rateLimitEntries(next, rateLimits);
      if (next.dns.servers.join() !== o.config().dns.servers.join()) {
        resolver = new Resolver({ servers: next.dns.servers });
        spfMemo = new SpfMemo(); // other servers may answer otherwise
      }
    },
    stop() {
      if (saver !== null) clearInterval(saver);
      save();
    },
    dsnSigner() {
      if (!o.config().dkim.sign) return null;
      const signing = new DkimSigning();
      return {
        write: (bytes) => signing.write(bytes),
        end: () => {
          const r = signing.end(keyring, Date.now());
          if (r.kind !== "signed") return null;
          o.dkimSigned(r.domain);
          return r.fields;
        },
      };
    },
  };
}
