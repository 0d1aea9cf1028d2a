/**
 * What the main thread does with each delivery result besides scheduling (pool.ts): one `delivery.attempt` log
 * line per outcome, `delivery.error` for an item that could not be processed, `queue.done` when an item leaves
 * the spool; and the counts behind the delivery metrics, through callbacks so this module knows no registry.
 */
import { replyLine } from "../mail/index.ts";
import type { Outcome, TlsRptResult } from "../mail/index.ts";
import type { PoolLog } from "./pool.ts";
import type { DeliveryResult } from "./worker-protocol.ts";

export interface DeliveryObserver {
  /** One attempt for one recipient (ringmta_deliveries_total{courier,outcome}). */
  attempt(courier: string, outcome: Outcome["kind"]): void;
  /** One attempt governed by an outbound TLS policy (ringmta_tls_policy_total{policy,result}). */
  tlsPolicy?(policy: string, result: "success" | "failure"): void;
  /** One TLS session (or failure) under a policy, for TLS-RPT; once per attempt, not per recipient. */
  tlsRpt?(r: TlsRptResult): void;
  /** Item `id` is delivered completely and gone from the spool. */
  done(id: string): void;
}

export function resultReporter(log: PoolLog, observer: DeliveryObserver): (r: DeliveryResult) => void {
  return (r) => {
    // The recipients of one transaction share one TLS session: count it once.
    let counted: TlsRptResult | undefined;
    for (const o of r.outcomes) {
      const rpt = o.outcome.tlsRpt;
      if (rpt !== undefined && observer.tlsRpt !== undefined && !sameSession(counted, rpt)) {
        observer.tlsRpt(rpt);
        counted = rpt;
      }
      observer.attempt(o.courier, o.outcome.kind);
      const policy = o.outcome.tlsPolicy;
      if (policy !== undefined) observer.tlsPolicy?.(policy, o.outcome.kind === "delivered" ? "success" : "failure");
      log.info("delivery.attempt", {
        id: r.id,
        index: o.index,
        recipient: o.address,
        courier: o.courier,
        outcome: o.outcome.kind,
        remote: o.outcome.remoteMta,
        reply: replyLine(o.outcome),
        ...(policy !== undefined ? { tls_policy: policy } : {}),
        duration_ms: o.ms,
      });
    }
    if (r.error) log.warn("delivery.error", { id: r.id, error: r.error });
    if (r.done) {
      observer.done(r.id);
      log.info("queue.done", { id: r.id });
    }
  };
}

function sameSession(a: TlsRptResult | undefined, b: TlsRptResult): boolean {
  return a !== undefined && a.domain === b.domain && a.mxHost === b.mxHost && a.failure === b.failure && a.receivingIp === b.receivingIp;
}
