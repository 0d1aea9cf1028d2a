/**
 * What the checks decide for a message (CONTRACT "Replies" rows for DMARC and temperror, "Inbound checks"):
 * only `dmarc = "enforce"` acts; "on" records the results and delivers.
 */
import type { ChecksAction, DkimOutcome, DmarcOutcome, SpfOutcome } from "./types.ts";

/** RFC 3463 §3.8: 5.7.1 delivery not authorized; 4.7.0 a temporary security failure. Plain and stable. */
export const DMARC_REJECT_REPLY = "550 5.7.1 Message rejected by the sender domain's DMARC policy";
export const DMARC_TEMPFAIL_REPLY = "451 4.7.0 DNS failure while checking the sender domain's DMARC policy, try again later";

export function decide(o: {
  spf: SpfOutcome | null;
  dkim: ReadonlyArray<DkimOutcome>;
  dmarc: DmarcOutcome | null;
  mode: "off" | "on" | "enforce";
}): ChecksAction {
  const d = o.dmarc;
  if (o.mode !== "enforce" || d === null) return { kind: "accept" };
  // A dmarc temperror (the _dmarc lookup itself failed) is recorded and the message accepted (CONTRACT).
  if (d.result === "pass" || d.result === "none" || d.result === "temperror" || d.result === "permerror") return { kind: "accept" };
  if (d.policy === "reject") {
    // The policy says reject, but an SPF or DKIM lookup that timed out might have made the message pass: the
    // rejection is undecided, so the client is asked to try again (451 4.7.0), never refused for good.
    const undecided = o.spf?.result === "temperror" || o.dkim.some((k) => k.result === "temperror");
    return undecided ? { kind: "tempfail", reply: DMARC_TEMPFAIL_REPLY } : { kind: "reject", reply: DMARC_REJECT_REPLY };
  }
  if (d.policy === "quarantine") return { kind: "quarantine" };
  return { kind: "accept" };
}
