/**
 * Making and showing structured outcomes (types.ts Outcome). One place turns an outcome into the one-line reply
 * form "451 4.3.0 text" that `queue list` and the logs show; nothing reads that form back.
 */
import type { Outcome } from "./types.ts";

/** An outcome of our own making: no Remote-MTA (RFC 3464 §2.3.5 names only a host that replied). */
export function localOutcome(kind: Outcome["kind"], code: number, enhanced: string, text: string): Outcome {
  return { kind, code, enhanced, text };
}

/** "code enhanced text", the shape of an SMTP reply line with enhanced status (RFC 2034 §4). */
export function replyLine(o: Pick<Outcome, "code" | "enhanced" | "text">): string {
  let s = String(o.code);
  if (o.enhanced !== "") s += ` ${o.enhanced}`;
  if (o.text !== "") s += ` ${o.text}`;
  return s;
}

/** The kind an SMTP reply code means for the recipients it answers (RFC 5321 §4.2.1). */
export function kindOfCode(code: number): Outcome["kind"] {
  return code >= 200 && code < 300 ? "delivered" : code >= 500 ? "failed" : "deferred";
}
