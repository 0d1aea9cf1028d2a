/**
 * The defences of an internet-facing MX, each one stage (ARCHITECTURE "inbound/"): DNS lists, pregreet,
 * greylisting and rate limits. app/ builds them from `[defence]` and `[[rate_limits]]` and orders them
 * DNSBL → pregreet → greylisting → rate limits, so a permanent refusal (554) wins over a deferral (451) at RCPT, and a
 * greylisted recipient costs no rate-limit token.
 *
 * Who is exempt (CONTRACT "[defence] MX sessions only"): DNS lists, pregreet and greylisting never apply to a
 * trusted client (app/ says which: relay.networks, or a listener where AUTH is required) nor to an authenticated
 * session; a DNSWL-listed client skips DNSBL, greylisting and pregreet. Rate limits apply to every session
 * (auth_user is there for compromised accounts).
 */
import type { MaybePromise, SessionView, Stage, StageRecipient, StageSession, Verdict } from "../mail/index.ts";
import { clientNetwork, plainAddress } from "./client-address.ts";
import type { ClientLists, DnsLists, ListResult } from "./dns-lists.ts";
import { tripleKey, type GreylistAnswer, type GreylistStore } from "./greylist.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import type { DefenceReport } from "./report.ts";

/** The `[defence]` values the stages read at each connection (SIGHUP changes apply to new connections). */
export interface DefenceSettings {
  dnsbl: readonly string[];
  dnswl: readonly string[];
  pregreetMs: number;
  greylist: boolean;
  greylistDelayMs: number;
}

export interface DefenceDeps {
  settings(): DefenceSettings;
  /** True for clients the defences leave alone: relay.networks, listeners that require AUTH. */
  trusted(view: SessionView): boolean;
  lists: DnsLists;
  report: DefenceReport;
}

/**
 * The fleet-wide counts of a fleet on one PostgreSQL directory (directory/shared-limits.ts). The local store and
 * limiters stay the fast path: the fleet is asked only when the local answer is "pass" for a rate limit or "defer"
 * for an unknown triple; null (no answer in time) keeps the local answer, so SMTP never waits on a dead database.
 */
export interface FleetCounters {
  /** -1: all within rate (charged); i: charges[i] over its rate (none charged); null: no answer. */
  rate(charges: ReadonlyArray<{ key: string; count: number; windowMs: number }>): Promise<number | null>;
  greylist(key: string, delayMs: number): Promise<GreylistAnswer | null>;
}

// CONTRACT replies; RFC 3463: 5.7.1 delivery not authorized, 5.5.1 invalid command (talking out of turn),
// 4.7.1 a temporary policy refusal (RFC 6647 §2.1 for greylisting).
export const DefenceReply = {
  listed: (zone: string, ip: string): string => `554 5.7.1 Client host [${ip}] blocked using ${zone}`,
  pregreet: "554 5.5.1 Protocol error: talked before the greeting",
  greylisted: "451 4.7.1 Greylisted, please try again later",
  rateLimited: (key: string): string => `451 4.7.1 Too many messages for this ${key.replace("_", " ")}, try again later`,
} as const;

function listsOf(deps: DefenceDeps, view: SessionView, s: DefenceSettings): ClientLists | null {
  return s.dnsbl.length === 0 && s.dnswl.length === 0 ? null : deps.lists.forSession(view, s.dnsbl, s.dnswl);
}

/**
 * DNSBL/DNSWL: the lookups start when the connection opens (pregreet needs the allowlist's answer before the
 * banner); RCPT waits for them only if they are still running, and refuses a listed client there, so the refused
 * recipient is logged (554 5.7.1 naming the zone).
 */
export function dnsblStage(deps: DefenceDeps): Stage {
  return {
    name: "dnsbl",
    open(view) {
      const s = deps.settings();
      if (deps.trusted(view)) return null;
      const lists = listsOf(deps, view, s);
      if (lists === null || s.dnsbl.length === 0) return null;
      const decide = (r: ListResult, rcpt: StageRecipient, sender: string): Verdict => {
        if (r.blockedBy === null || r.allowedBy !== null || view.authUser !== undefined) return null;
        const ip = plainAddress(view.clientAddress);
        deps.report("dnsbl", { client: ip, zone: r.blockedBy.zone, answer: r.blockedBy.code, from: sender, to: rcpt.address });
        return DefenceReply.listed(r.blockedBy.zone, ip);
      };
      return {
        rcpt(rcpt, sender): MaybePromise<Verdict> {
          if (view.authUser !== undefined) return null;
          const known = lists.result;
          return known !== undefined ? decide(known, rcpt, sender) : lists.promise.then((r) => decide(r, rcpt, sender));
        },
      };
    },
  };
}

/**
 * Pregreet (postscreen's early-talker test): the banner waits pregreet_ms; a client that sent anything before it
 * gets 554 5.5.1 and is closed (RFC 5321 §4.3.1: the client waits for the greeting). One timer per connection;
 * the session counts the bytes. A DNSWL-listed client is greeted as soon as the allowlist answers.
 */
export function pregreetStage(deps: DefenceDeps, sleep: (ms: number) => Promise<void>): Stage {
  return {
    name: "pregreet",
    open(view) {
      const s = deps.settings();
      if (s.pregreetMs <= 0 || deps.trusted(view)) return null;
      const lists = s.dnswl.length > 0 ? listsOf(deps, view, s) : null;
      let done = false;
      let answer: (v: Verdict) => void = () => {};
      const finish = (v: Verdict): void => {
        if (done) return;
        done = true;
        answer(v);
      };
      const session: StageSession = {
        connect: () =>
          new Promise<Verdict>((resolve) => {
            answer = resolve;
            if (lists !== null) void lists.promise.then((r) => r.allowedBy !== null && finish(null));
            void sleep(s.pregreetMs).then(async () => {
              if (done) return;
              if (view.bytesReceived === 0) return finish(null);
              // It talked first; still spare it if an allowlist (not yet answered) lists it.
              if (lists !== null && (await lists.promise).allowedBy !== null) return finish(null);
              if (done) return;
              const ip = plainAddress(view.clientAddress);
              deps.report("pregreet", { client: ip, bytes: view.bytesReceived, wait_ms: s.pregreetMs });
              finish(DefenceReply.pregreet);
            });
          }),
        // A client that hung up during the wait is not refused (nobody would read it) nor reported.
        close: () => finish(null),
      };
      return session;
    },
  };
}

/** Greylisting of (client /24 or /64, sender, recipient) at RCPT (451 4.7.1); see greylist.ts. */
export function greylistStage(deps: DefenceDeps, store: GreylistStore, now: () => number, fleet: () => FleetCounters | null = () => null): Stage {
  return {
    name: "greylist",
    open(view) {
      const s = deps.settings();
      if (!s.greylist || deps.trusted(view)) return null;
      const lists = s.dnswl.length > 0 ? listsOf(deps, view, s) : null;
      const network = clientNetwork(view.clientAddress);
      const defer = (rcpt: StageRecipient, sender: string): Verdict => {
        deps.report("greylist", { client: plainAddress(view.clientAddress), network, from: sender, to: rcpt.address });
        return DefenceReply.greylisted;
      };
      const decide = (allowed: boolean, rcpt: StageRecipient, sender: string): MaybePromise<Verdict> => {
        if (allowed || view.authUser !== undefined) return null;
        const key = tripleKey(network, sender, rcpt.address);
        if (store.attempt(key, now(), s.greylistDelayMs) === "pass") return null;
        // Unknown here: the fleet may have seen it on another node (one upsert; none for a locally known triple).
        const shared = fleet();
        if (shared === null) return defer(rcpt, sender);
        return shared.greylist(key, s.greylistDelayMs).then((answer) => {
          if (answer !== "pass") return defer(rcpt, sender);
          store.known(key, now());
          return null;
        });
      };
      return {
        rcpt(rcpt, sender): MaybePromise<Verdict> {
          if (view.authUser !== undefined) return null;
          if (lists === null) return decide(false, rcpt, sender);
          const known = lists.result;
          if (known !== undefined) return decide(known.allowedBy !== null, rcpt, sender);
          return lists.promise.then((r) => decide(r.allowedBy !== null, rcpt, sender));
        },
      };
    },
  };
}

export type RateLimitKey = "ip" | "sender" | "sender_domain" | "recipient" | "auth_user";

export interface RateLimitEntry {
  key: RateLimitKey;
  /** As configured ("60/1m"), for the log. */
  rate: string;
  limiter: RateLimiter;
}

/** The value a MAIL-time key takes in this session, or null when it has none (no AUTH, the null sender <>). */
function mailKeyValue(key: RateLimitKey, view: SessionView, sender: string): string | null {
  switch (key) {
    case "ip":
      return plainAddress(view.clientAddress);
    case "sender":
      return sender === "" ? null : sender.toLowerCase();
    case "sender_domain": {
      const at = sender.lastIndexOf("@");
      return at < 0 ? null : sender.slice(at + 1).toLowerCase();
    }
    case "auth_user":
      return view.authUser === undefined ? null : view.authUser.toLowerCase();
    case "recipient":
      return null;
  }
}

/**
 * Rate limits (`[[rate_limits]]`): each MAIL FROM is one message for the ip, sender, sender_domain and auth_user
 * limits, each accepted-so-far RCPT TO one for the recipient limits; over any of them → 451 4.7.1 at that command.
 * Every limit is checked before any is charged, so a refused command costs no tokens. Limits count over all
 * listeners and sessions (one limiter per entry, shared); `entries` is read at each connection. With `fleet`
 * (kind = "postgres") they count over every node too: what the local limiters allow is then checked and charged
 * in the database (directory/shared-limits.ts: one transaction per MAIL, one per RCPT for recipient limits).
 */
export function rateLimitStage(
  entries: () => readonly RateLimitEntry[],
  report: DefenceReport,
  now: () => number,
  fleet: () => FleetCounters | null = () => null,
): Stage {
  const ticks: number[] = [];
  /** Checks then charges `list` for the values `valueOf` gives; the entry that refused, or null. */
  const charge = (list: readonly RateLimitEntry[], valueOf: (e: RateLimitEntry) => string | null): { e: RateLimitEntry; value: string } | null => {
    const t = now();
    ticks.length = 0;
    for (const e of list) {
      const v = valueOf(e);
      if (v === null) {
        ticks.push(-1);
        continue;
      }
      const next = e.limiter.check(v, t);
      if (next < 0) return { e, value: v };
      ticks.push(next);
    }
    list.forEach((e, i) => {
      if (ticks[i]! >= 0) e.limiter.commit(valueOf(e)!, ticks[i]!);
    });
    return null;
  };
  /**
   * After the local limiters allowed it: the same limits fleet-wide (one transaction, a row per limit), or the
   * local answer when there is no fleet or it did not answer. The local tokens stay charged either way.
   */
  const chargeFleet = (
    list: readonly RateLimitEntry[],
    valueOf: (e: RateLimitEntry) => string | null,
  ): MaybePromise<{ e: RateLimitEntry; value: string } | null> => {
    const shared = fleet();
    if (shared === null) return null;
    const charged: Array<{ e: RateLimitEntry; value: string }> = [];
    for (const e of list) {
      const value = valueOf(e);
      if (value !== null) charged.push({ e, value });
    }
    if (charged.length === 0) return null;
    const charges = charged.map(({ e, value }) => ({ key: `${e.key} ${e.rate} ${value}`, count: e.limiter.spec.count, windowMs: e.limiter.spec.windowMs }));
    return shared.rate(charges).then((i) => (i === null || i < 0 ? null : charged[i]!));
  };
  const decide = (
    list: readonly RateLimitEntry[],
    valueOf: (e: RateLimitEntry) => string | null,
    refuse: (hit: { e: RateLimitEntry; value: string }) => Verdict,
  ): MaybePromise<Verdict> => {
    const hit = charge(list, valueOf);
    if (hit !== null) return refuse(hit);
    const fleetHit = chargeFleet(list, valueOf);
    if (fleetHit === null) return null;
    return (fleetHit as Promise<{ e: RateLimitEntry; value: string } | null>).then((h) => (h === null ? null : refuse(h)));
  };
  return {
    name: "rate_limits",
    open(view) {
      const all = entries();
      if (all.length === 0) return null;
      const atMail = all.filter((e) => e.key !== "recipient");
      const atRcpt = all.filter((e) => e.key === "recipient");
      const refuse = (hit: { e: RateLimitEntry; value: string }, fields: Record<string, unknown>): Verdict => {
        report("rate_limit", { client: plainAddress(view.clientAddress), key: hit.e.key, value: hit.value, rate: hit.e.rate, ...fields });
        return DefenceReply.rateLimited(hit.e.key);
      };
      const session: StageSession = {};
      if (atMail.length > 0) {
        session.mail = (sender) =>
          decide(atMail, (e) => mailKeyValue(e.key, view, sender), (hit) => refuse(hit, { from: sender }));
      }
      if (atRcpt.length > 0) {
        session.rcpt = (rcpt, sender) => {
          const to = rcpt.address.toLowerCase();
          return decide(atRcpt, () => to, (hit) => refuse(hit, { from: sender, to: rcpt.address }));
        };
      }
      return session;
    },
  };
}
