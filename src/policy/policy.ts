/**
 * Who may send what to whom: local domains, users, aliases (chains, loops), catch-all, relay permission and
 * the sender/login match. Pure: domains, users and aliases come from the directory port (the config and users
 * file, or PostgreSQL: this file does not know which), read once per decision; no I/O.
 */
import type { DirectorySnapshot, DirectoryView } from "../directory/index.ts";
import { NAME_MAX, addressKey, foldLocalPart, formatPath, splitAddress as splitParts, utf8Length, type OwnRoute, type Route } from "../mail/index.ts";
import type { PolicyPort, RcptContext, RcptDecision } from "../session/index.ts";
import { cidrContains, parseCidr, parseIp, type Cidr } from "./cidr.ts";
import { srsForward, srsReverse } from "./srs.ts";

export interface PolicySettings {
  /** Domains, users and aliases. A view that is unavailable (null) makes every decision "tempfail". */
  directory: DirectoryView;
  catchAll: boolean;
  relayNetworks: string[];
  /** CONTRACT [srs]: secret "" = off; domain "" = the first local domain. Absent = off. */
  srs?: { secret: string; domain: string };
  /** The time for SRS timestamps (ms since the epoch); default Date.now. */
  now?: () => number;
}

type Targets = Extract<RcptDecision, { kind: "accept" }>["targets"];

/** Alias chains deeper than this are treated as loops (Postfix: virtual_alias_recursion_limit = 1000; we are
 *  stricter because a deep chain is a mistake). */
const MAX_ALIAS_DEPTH = 20;

function splitAddress(address: string): [string, string] {
  const p = splitParts(address);
  return [p.localPart, p.domain];
}

/**
 * Can DATA/mail/<domain>/<localPart>/ exist? Each is one path component, at most NAME_MAX octets (Linux ext4, xfs,
 * btrfs, tmpfs); both are already folded. The whole path stays far below PATH_MAX (4096): two components of at
 * most 255 octets, "/.Junk/tmp/" and a Maildir file name of about 80, under a data_dir of any sane length.
 */
export function mailboxFits(route: { domain: string; localPart: string }): boolean {
  const fits = (s: string): boolean => s.length * 3 <= NAME_MAX || utf8Length(s) <= NAME_MAX;
  return fits(route.localPart) && fits(route.domain);
}

/** Lookups are case-insensitive (as Postfix's maps are), with the directory's key rule (mail/ addressKey). */
function key(localPart: string, domain: string): string {
  return `${foldLocalPart(localPart)}@${domain.toLowerCase()}`;
}

/** The tables of one decision: the directory's snapshot at its start. */
type Tables = DirectorySnapshot;

/** A local part that is safe as one directory name under DATA/mail/<domain>/ (no traversal, no control bytes). */
function safeMailboxName(localPart: string): boolean {
  return localPart !== "" && localPart !== "." && localPart !== ".." && !/[/\\\x00-\x1f\x7f]/.test(localPart);
}

export class Policy implements PolicyPort {
  private readonly networks: Cidr[];

  constructor(private readonly s: PolicySettings) {
    this.networks = s.relayNetworks.map((n) => parseCidr(n)).filter((c): c is Cidr => c !== null);
  }

  recipient(localPart: string, domain: string, ctx: RcptContext): RcptDecision {
    return this.decide(localPart, domain, ctx);
  }

  /**
   * Where mail that we generate ourselves (a DSN to an envelope sender) to `address` goes: through aliases like
   * any recipient, non-local domains relayed. Relay permission is about clients, so it is not asked: our own mail
   * needs no login. "nowhere": an unknown local user; "later": the directory is unavailable.
   */
  routeOwn(address: string): OwnRoute {
    const [localPart, domain] = splitAddress(address);
    const d = this.decide(localPart, domain, null);
    if (d.kind === "accept") return d;
    // The directory cannot say now (CONTRACT: never a permanent decision then): the notice waits for it.
    return d.kind === "tempfail" ? { kind: "later" } : { kind: "nowhere" };
  }

  /**
   * SRS as the directory's tables stand: the secret and the SRS domain (lower case), or null when off. The domain
   * is looked up here rather than at config load because a PostgreSQL directory's domains are known only now (its
   * "first" domain is the first in alphabetical order, as it loads them); a configured domain that is not local
   * (possible only with PostgreSQL, whose domains the config check cannot see) turns SRS off rather than write
   * addresses nobody here would accept a bounce for.
   */
  private srs(t: Tables): { secret: string; domain: string } | null {
    const c = this.s.srs;
    if (c === undefined || c.secret === "") return null;
    const domain = c.domain !== "" ? c.domain.toLowerCase() : t.domains.values().next().value;
    return domain !== undefined && t.domains.has(domain) ? { secret: c.secret, domain } : null;
  }

  /** `ctx` null: our own mail (routeOwn), which may go anywhere. */
  private decide(localPart: string, domain: string, ctx: RcptContext | null): RcptDecision {
    // CONTRACT: directory unavailable → 451 4.3.0, never a 5xx we cannot vouch for (nor a relay decision: we
    // cannot tell a local domain from a remote one).
    const t = this.s.directory.snapshot();
    if (t === null) return { kind: "tempfail" };
    // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted; it means our postmaster.
    if (domain === "") {
      const first = t.domains.values().next().value;
      if (localPart.toLowerCase() !== "postmaster" || first === undefined) return { kind: "unknownUser" };
      domain = first;
    }
    if (!t.domains.has(domain.toLowerCase())) {
      if (ctx !== null && !this.mayRelay(ctx)) return { kind: "relayDenied" };
      return { kind: "accept", targets: [{ address: formatPath(localPart, domain), route: this.remote(domain) }] };
    }
    const srs = this.srs(t);
    let targets: Targets = [];
    // CONTRACT "Forwarding": a bounce to an SRS0 address of the SRS domain goes back to the original sender. Only
    // what our hash vouches for, and only for 21 days, or the SRS domain would relay for anyone.
    const back = srs !== null && domain.toLowerCase() === srs.domain ? srsReverse(srs.secret, localPart, this.now()) : null;
    if (back !== null && back.ok) {
      const original = splitAddress(back.address);
      // Routed as our own mail is (ctx null): the original sender is anywhere, and the hash, not the client,
      // is what allows the relay. Its own decision (unknown local user, unwritable) is this one's.
      const d = this.decide(original[0], original[1], null);
      if (d.kind !== "accept") return d;
      targets = d.targets;
    } else if (back !== null && back.reason !== "not-srs") {
      return { kind: "srsInvalid", reason: back.reason };
    } else {
      if (!this.expand(t, localPart, domain, targets, null, 0)) return { kind: "unknownUser" };
      if (targets.length === 0) return { kind: "unknownUser" };
    }
    // Whatever is accepted must be deliverable: a mailbox name the file system cannot hold would defer until
    // max_age (ENAMETOOLONG), a way to park mail in the queue. Refused now with 553 5.1.3 instead.
    for (const t of targets) if (t.route.kind === "local" && !mailboxFits(t.route)) return { kind: "unwritable" };
    if (srs !== null && ctx?.sender) this.rewriteForwarded(t, srs, ctx.sender, targets);
    return { kind: "accept", targets };
  }

  /**
   * CONTRACT "Forwarding": a copy to a target outside local.domains, reached from a local address (an alias, or
   * an SRS reversal), leaves with MAIL FROM rewritten to SRS0 in the SRS domain, so that the next hop's SPF check
   * sees our domain, not one whose SPF record does not list us. Not rewritten: <> (never, RFC 5321 §4.5.5), a
   * sender in local.domains (our SPF covers it), local copies (Return-Path keeps the original) and mail relayed
   * to a remote RCPT directly (that is not forwarding). Decided here, once per RCPT, because here is where it is
   * known that a target came from expansion; the session stores it per recipient (EnvelopeRecipient.sender).
   */
  private rewriteForwarded(t: Tables, srs: { secret: string; domain: string }, sender: string, targets: Targets): void {
    const senderDomain = splitAddress(sender)[1].toLowerCase();
    if (senderDomain === "" || t.domains.has(senderDomain)) return;
    let rewritten: string | null | undefined;
    for (let k = 0; k < targets.length; k++) {
      if (targets[k]!.route.kind !== "remote") continue;
      rewritten ??= srsForward(srs.secret, srs.domain, sender, this.now());
      if (rewritten === null) return; // too long to be a path: the original goes out (CONTRACT: no lost mail)
      targets[k] = { ...targets[k]!, sender: rewritten };
    }
  }

  private now(): number {
    return (this.s.now ?? Date.now)();
  }

  /**
   * Resolve one address into final targets. Aliases win over users (as Postfix virtual_alias_maps do); a
   * chain that comes back to an address already on the path is a loop: that branch yields nothing.
   * Returns false when a local address is unknown.
   */
  private expand(
    t: Tables,
    localPart: string,
    domain: string,
    out: Array<{ address: string; route: Route }>,
    path: Set<string> | null,
    depth: number,
  ): boolean {
    // At depth 0 recipient() has checked the domain already; alias targets may be anywhere.
    if (depth > 0 && !t.domains.has(domain.toLowerCase())) {
      out.push({ address: formatPath(localPart, domain), route: this.remote(domain) });
      return true;
    }
    // The lookup key is made only when a table needs it (no aliases and catch_all: none does).
    const k = t.aliases.size > 0 ? key(localPart, domain) : null;
    const alias = k === null ? undefined : t.aliases.get(k);
    if (alias !== undefined) return this.expandAlias(t, k!, alias, out, path ?? new Set(), depth);
    if (!this.deliverable(t, localPart, domain, k)) return false;
    out.push(this.local(localPart, domain));
    return true;
  }

  /** The targets of alias `k`, each expanded in turn; `path` holds the aliases being expanded (loops). */
  private expandAlias(
    t: Tables,
    k: string,
    alias: readonly string[],
    out: Array<{ address: string; route: Route }>,
    path: Set<string>,
    depth: number,
  ): boolean {
    if (path.has(k) || depth >= MAX_ALIAS_DEPTH) return true;
    path.add(k);
    let any = false;
    for (const target of alias) {
      const [lp, d] = splitAddress(target);
      // A target that is itself (alias "a" -> ["a", "b"]) means "deliver here too".
      if (key(lp, d) === k) {
        if (this.deliverable(t, lp, d, k)) {
          out.push(this.local(lp, d));
          any = true;
        }
        continue;
      }
      if (this.expand(t, lp, d, out, path, depth + 1)) any = true;
    }
    path.delete(k);
    return any;
  }

  /** `k`: key(localPart, domain) when the caller already has it. */
  private deliverable(t: Tables, localPart: string, domain: string, k: string | null): boolean {
    if (!safeMailboxName(localPart)) return false;
    return this.s.catchAll || t.users.has(k ?? key(localPart, domain));
  }

  /** The mailbox, named with the one folding rule (mail/ foldLocalPart: NFC, then lower case). */
  private local(localPart: string, domain: string): { address: string; route: Route } {
    const lp = foldLocalPart(localPart);
    const d = domain.toLowerCase();
    return { address: formatPath(lp, d), route: { kind: "local", domain: d, localPart: lp } };
  }

  private remote(domain: string): Route {
    return { kind: "remote", domain: domain.toLowerCase() };
  }

  /** CONTRACT: relaying needs AUTH or a client inside relay.networks. */
  mayRelay(ctx: RcptContext): boolean {
    return ctx.authUser !== undefined || this.inRelayNetworks(ctx.clientAddress);
  }

  /** Is `clientAddress` inside relay.networks? (Such clients are trusted: no DNSBL, greylisting or pregreet.) */
  inRelayNetworks(clientAddress: string): boolean {
    if (this.networks.length === 0) return false;
    const ip = parseIp(clientAddress);
    return ip !== null && this.networks.some((n) => cidrContains(n, ip));
  }

  /**
   * CONTRACT: after AUTH, MAIL FROM must be the user's own address or an alias whose targets include it;
   * domains compare case-insensitively, local parts exactly; <> is not the user's address.
   */
  senderAllowed(authUser: string, sender: string): boolean {
    if (sender === "") return false;
    const norm = (a: string): string => {
      const [lp, d] = splitAddress(a);
      return `${lp}@${d.toLowerCase()}`;
    };
    const user = norm(authUser);
    const from = norm(sender);
    if (from === user) return true;
    // The last view the directory had (an AUTH user exists, so it was available moments ago).
    const targets = this.s.directory.snapshot()?.aliases.get(addressKey(sender));
    return targets !== undefined && targets.some((t) => norm(t) === user);
  }
}
