/**
 * The inbound mail-authentication checks as a stage (CONTRACT "Inbound checks", [checks]): on MX sessions — neither
 * authenticated nor from relay.networks — SPF at MAIL FROM (of the HELO name for <>), DKIM and ARC verified while
 * the body streams, DMARC at end of data, then one Authentication-Results field with our authserv-id on top of the
 * message. Forged fields with our authserv-id never reach this stage: the session removes them as it reads
 * (protocol/auth-results-filter.ts).
 *
 * What the results do (checks/decide.ts): `spf_reject` turns an SPF fail into 550 5.7.23 at MAIL FROM (RFC 7372
 * §3.2); DMARC `enforce` rejects (550 5.7.1) or quarantines (the recipients' `.Junk` folder); a DNS failure that
 * leaves a reject undecided is 451 4.7.0, never a 5xx. A forwarded message (SRS on, an alias target outside our
 * domains) that carried DKIM or ARC results is ARC-sealed (RFC 8617 §5.1) so that the next hop can trust our
 * results when our forwarding breaks SPF.
 */
import {
  authenticationResults,
  checkDmarc,
  decide,
  MessageVerifier,
  type ArcSealer,
  type ChecksAction,
  type DmarcOutcome,
  type SpfOutcome,
  type SpfQuery,
  type VerifiedMessage,
} from "../checks/index.ts";
import type { DnsLookup } from "../dns/index.ts";
import type { EndVerdict, MessageObserver, SessionView, Stage, StageSession, StageTransaction, Verdict } from "../mail/index.ts";

/** The [checks] settings the stage reads at each transaction (a SIGHUP applies to the next one). */
export interface AuthCheckSwitches {
  readonly spf: boolean;
  readonly spfReject: boolean;
  readonly dkim: boolean;
  readonly arc: boolean;
  readonly dmarc: "off" | "on" | "enforce";
}

export type AuthCheck = "spf" | "dkim" | "arc" | "dmarc";

/** Whether [checks] asks for anything at all (then our Authentication-Results field is added, forged ones go). */
export function anyCheckOn(sw: AuthCheckSwitches): boolean {
  return sw.spf || sw.dkim || sw.arc || sw.dmarc !== "off";
}

export interface AuthChecksDeps {
  switches(): AuthCheckSwitches;
  /** The sessions that are checked: neither authenticated nor from relay.networks (asked at MAIL, after AUTH). */
  checked(view: SessionView): boolean;
  /** Our authserv-id (RFC 8601 §2.5): the hostname. */
  authservId(): string;
  /** The resolver in force (SIGHUP may replace it). */
  dns(): DnsLookup;
  /**
   * SPF check_host() through `dns` (checks/checkSpf, or its SpfMemo): an outcome known now (remembered), or a
   * promise of one; `receiver` is our name for %{r}.
   */
  spf(q: SpfQuery, dns: DnsLookup, receiver: string): SpfOutcome | Promise<SpfOutcome>;
  /** The key to ARC-seal a transaction that forwards mail (SRS on, an alias target outside our domains), or null. */
  sealer(tx: StageTransaction): ArcSealer | null;
  now(): number;
  /** One count per check result (metrics: ringmta_auth_checks_total{check,result}). */
  counted(check: AuthCheck, result: string): void;
}

/** RFC 7372 §3.2 code for an SPF fail; the text names the identity, never the domain owner's explanation. */
const spfRejectReply = (spf: SpfOutcome): string =>
  `550 5.7.23 SPF check failed for ${spf.scope === "helo" ? "HELO name" : "sender domain"} ${spf.domain}`;

const JUNK = ".Junk";
/** RFC 3463 5.3.4: "message too big for system" — here its header section. */
const HEADER_TOO_LARGE_REPLY = "552 5.3.4 Message header section too large to check";

/** What the checks make of one message: the field to add, what to do, and the results for the log line. */
export interface ChecksReport {
  /** "Authentication-Results: <authserv-id>; ..." ending CRLF. */
  readonly field: string;
  readonly action: ChecksAction;
  readonly log: Readonly<Record<string, unknown>>;
}

/**
 * The message-level checks once the message was read: DMARC over the SPF and DKIM results, the field, the
 * action. Shared by the stage and by `verify`, so the CLI prints exactly what delivery would add.
 */
export async function concludeChecks(o: {
  sw: AuthCheckSwitches;
  authservId: string;
  dns: DnsLookup;
  spf: SpfOutcome | null;
  verified: VerifiedMessage | null;
  counted?: (check: AuthCheck, result: string) => void;
}): Promise<ChecksReport> {
  const { sw, spf, verified: v } = o;
  const dkim = v !== null && sw.dkim ? v.dkim : null;
  const arc = v !== null && sw.arc ? v.arc : null;
  let dmarc: DmarcOutcome | null = null;
  if (v !== null && sw.dmarc !== "off") {
    dmarc = await checkDmarc({ fromDomains: v.fromDomains, spf, dkim: v.dkim, arc: v.arc, dns: o.dns });
  }
  const field = authenticationResults(o.authservId, { spf, dkim, arc, dmarc });
  // A header section too large to read (8 MiB or 50,000 lines, checks/message.ts) hides its From: under DMARC
  // it would pass as "no policy", a way around p=reject. No honest message has one: refused as too big.
  const action: ChecksAction =
    v?.headerTooLarge === true && sw.dmarc !== "off"
      ? { kind: "reject", reply: HEADER_TOO_LARGE_REPLY }
      : decide({ spf, dkim: v?.dkim ?? [], dmarc, mode: sw.dmarc });
  if (o.counted !== undefined) {
    if (dkim !== null) {
      if (dkim.length === 0) o.counted("dkim", "none");
      for (const d of dkim) o.counted("dkim", d.result);
    }
    if (arc !== null) o.counted("arc", arc.result);
    if (dmarc !== null) o.counted("dmarc", dmarc.result);
  }
  return { field, action, log: { checks: summary(spf, dkim, arc, dmarc) } };
}

/** A message verifier when any body check is on (DMARC needs the From domains and DKIM results), else null. */
export function verifierFor(sw: AuthCheckSwitches, dns: DnsLookup, sealer: ArcSealer | null): MessageVerifier | null {
  if (!sw.dkim && !sw.arc && sw.dmarc === "off") return null;
  return new MessageVerifier({ dns, dkim: sw.dkim || sw.dmarc !== "off", arc: sw.arc, sealer });
}

class ChecksObserver implements MessageObserver {
  private readonly verifier: MessageVerifier | null;

  constructor(
    private readonly deps: AuthChecksDeps,
    private readonly sw: AuthCheckSwitches,
    private readonly spf: SpfOutcome | null,
    private readonly sealer: ArcSealer | null,
  ) {
    this.verifier = verifierFor(sw, deps.dns(), sealer);
  }

  write(bytes: Uint8Array): void {
    this.verifier?.write(bytes);
  }

  abort(): void {
    this.verifier?.abort();
  }

  async end(): Promise<EndVerdict> {
    const { deps } = this;
    const verified = this.verifier === null ? null : await this.verifier.end();
    const { field, action, log } = await concludeChecks({
      sw: this.sw,
      authservId: deps.authservId(),
      dns: deps.dns(),
      spf: this.spf,
      verified,
      counted: deps.counted,
    });
    if (action.kind === "reject" || action.kind === "tempfail") return { kind: "reject", reply: action.reply, log };
    const sealed = verified !== null ? await this.seal(verified, field) : "";
    return { kind: "accept", prepend: sealed + field, folder: action.kind === "quarantine" ? JUNK : undefined, log };
  }

  /** ARC set for a forwarded message that had DKIM or ARC results (CONTRACT "Forwarding"); "" when none. */
  private async seal(v: VerifiedMessage, field: string): Promise<string> {
    if (this.sealer === null || (v.dkim.length === 0 && v.arc.instance === 0)) return "";
    const value = field.slice(field.indexOf(":") + 1).replace(/\r\n$/, "").trim();
    return (await v.seal(value, this.deps.now())) ?? "";
  }
}

/** The results for the smtp.accepted / smtp.rejected log line. */
function summary(
  spf: SpfOutcome | null,
  dkim: VerifiedMessage["dkim"] | null,
  arc: VerifiedMessage["arc"] | null,
  dmarc: DmarcOutcome | null,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (spf !== null) out["spf"] = spf.result;
  if (dkim !== null) out["dkim"] = dkim.length === 0 ? ["none"] : dkim.map((d) => `${d.result}:${d.domain}`);
  if (arc !== null) out["arc"] = arc.result;
  if (dmarc !== null) out["dmarc"] = dmarc.result === "fail" ? `fail:${dmarc.policy}` : dmarc.result;
  return out;
}

export function authChecksStage(deps: AuthChecksDeps): Stage {
  return {
    name: "auth-checks",
    open(view: SessionView): StageSession {
      // Per transaction: the switches read at MAIL and the SPF result, for the message hook.
      let sw: AuthCheckSwitches | null = null;
      let spf: SpfOutcome | null = null;
      return {
        mail(sender: string) {
          spf = null;
          sw = null;
          if (!deps.checked(view)) return null;
          const s = deps.switches();
          if (!anyCheckOn(s)) return null;
          sw = s;
          if (!s.spf) return null;
          const q = { ip: view.clientAddress, helo: view.helo ?? "", sender };
          const settle = (r: SpfOutcome): Verdict => {
            spf = r;
            deps.counted("spf", r.result);
            return r.result === "fail" && s.spfReject ? spfRejectReply(r) : null;
          };
          // A known outcome answers synchronously: no busy phase for a sender seen a moment ago. %{r} in an
          // explanation (RFC 7208 §7.3) is our name, as in the Authentication-Results field.
          const r = deps.spf(q, deps.dns(), deps.authservId());
          return r instanceof Promise ? r.then(settle) : settle(r);
        },
        message(tx: StageTransaction) {
          if (sw === null) return null;
          return new ChecksObserver(deps, sw, spf, deps.sealer(tx));
        },
      };
    },
  };
}
