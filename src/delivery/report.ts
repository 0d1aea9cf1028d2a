/**
 * What the main thread does with each delivery result besides scheduling (pool.ts): one `delivery.attempt` log
 * line per outcome, `delivery.error` for an item that could not be processed, `queue.done` when an item leaves
 * the spool; and the counts behind the delivery metrics, through callbacks so this module knows no registry.
 */
import { replyLine } from "../mail/index.ts";
import type { Outcome } from "../mail/index.ts";
import type { PoolLog } from "./pool.ts";
import type { DeliveryResult } from "./worker-protocol.ts";

export interface DeliveryObserver {
  /** One attempt for one recipient (ringmta_deliveries_total{courier,outcome}). */
  attempt(courier: string, outcome: Outcome["kind"]): void;
  /** One attempt governed by an outbound TLS policy (ringmta_tls_policy_total{policy,result}). */
  tlsPolicy?(policy: string, result: "success" | "failure"): void;
  /** Item `id` is delivered completely and gone from the spool. */
  done(id: string): void;
}

export function resultReporter(log: PoolLog, observer: DeliveryObserver): (r: DeliveryResult) => void {
  return (r) => {
    for (const o of r.outcomes) {
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
