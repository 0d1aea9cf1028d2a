/**
 * The metric families of CONTRACT "/metrics", registered once, and the small adapters that connect them to the
 * session, delivery and spool callbacks. Wiring only: what is counted is decided where it happens.
 */
import type { DeliveryObserver } from "../delivery/index.ts";
import { Counter, GaugeFn, Histogram, Registry } from "../observe/index.ts";
import type { SessionMetrics } from "../session/index.ts";
import type { QueueStats } from "./queue-stats.ts";

export interface ServerMetrics {
  registry: Registry;
  session: SessionMetrics;
  delivery: DeliveryObserver;
  /** One spool group-commit round took `ms`. */
  spoolRound(ms: number): void;
  /** Connections: accepted (and, on an implicit-TLS listener, handshaken), open count up or down, refused. */
  connection(listener: string, implicitTls: boolean): void;
  connectionClosed(listener: string): void;
  refused(code: string): void;
  /** A refusal by an MX defence (dnsbl, pregreet, greylist, rate_limit). */
  defenceReject(reason: string): void;
  /** A message DKIM-signed for `domain` (d=). */
  dkimSigned(domain: string): void;
  /** One result of an inbound check (spf, dkim, arc, dmarc): pass, fail, none, temperror, ... */
  authCheck(check: string, result: string): void;
}

export function serverMetrics(stats: QueueStats, ringDepth: () => number): ServerMetrics {
  const registry = new Registry();
  const mConnTotal = registry.add(new Counter("ringmta_connections_total", "Connections accepted, by listener."));
  const mConnOpen = registry.add(new Counter("ringmta_connections_open", "Connections open now, by listener.", true));
  const mAccepted = registry.add(new Counter("ringmta_messages_accepted_total", "Messages accepted (250 after data)."));
  const mBytes = registry.add(new Counter("ringmta_received_bytes_total", "Message bytes accepted, by listener."));
  const mRejected = registry.add(new Counter("ringmta_messages_rejected_total", "Rejecting replies, by code."));
  const mAuth = registry.add(new Counter("ringmta_auth_total", "AUTH attempts, by listener and result."));
  const mTls = registry.add(new Counter("ringmta_tls_handshakes_total", "TLS handshakes (STARTTLS and implicit), by listener and result."));
  const mDeliveries = registry.add(new Counter("ringmta_deliveries_total", "Delivery attempts, by courier and outcome."));
  const mTlsPolicy = registry.add(
    new Counter("ringmta_tls_policy_total", "Remote delivery attempts under an outbound TLS policy (dane, mta-sts, mta-sts-testing), by result."),
  );
  const mDeliveryLatency = registry.add(
    new Histogram("ringmta_delivery_seconds", "From acceptance to delivery.", [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 60, 600, 3600]),
  );
  const mFsync = registry.add(
    new Histogram("ringmta_spool_commit_seconds", "Spool group-commit rounds (write, fsync, rename, directory fsync).", [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1]),
  );
  const mDefence = registry.add(
    new Counter("ringmta_defence_rejects_total", "Refusals by the MX defences (dnsbl, pregreet, greylist, rate_limit)."),
  );
  for (const reason of ["dnsbl", "pregreet", "greylist", "rate_limit"]) mDefence.bind({ reason });
  const mDkimSigned = registry.add(new Counter("ringmta_dkim_signed_total", "Messages DKIM-signed, by signing domain (d=)."));
  const mAuthChecks = registry.add(
    new Counter("ringmta_auth_checks_total", "Results of the inbound checks (spf, one per DKIM signature, arc, dmarc), by check and result."),
  );
  registry.add(new GaugeFn("ringmta_queue_messages", "Messages in the spool.", () => stats.count));
  registry.add(new GaugeFn("ringmta_ring_depth", "Message ids waiting in the ring for a delivery worker.", ringDepth));
  registry.add(new GaugeFn("ringmta_queue_oldest_seconds", "Age of the oldest message in the spool.", () => stats.oldestSeconds()));

  return {
    registry,
    session: {
      accepted: (listener, bytes) => {
        mAccepted.inc({ listener });
        mBytes.inc({ listener }, bytes);
      },
      rejected: (code) => mRejected.inc({ code }),
      auth: (listener, ok) => mAuth.inc({ listener, result: ok ? "success" : "failure" }),
      tlsHandshake: (listener, ok) => mTls.inc({ listener, result: ok ? "success" : "failure" }),
    },
    delivery: {
      attempt: (courier, outcome) => mDeliveries.inc({ courier, outcome }),
      tlsPolicy: (policy, result) => mTlsPolicy.inc({ policy, result }),
      done: (id) => {
        const arrival = stats.remove(id);
        if (arrival !== undefined) mDeliveryLatency.observe((Date.now() - arrival) / 1000);
      },
    },
    spoolRound: (ms) => mFsync.observe(ms / 1000),
    connection: (listener, implicitTls) => {
      mConnTotal.inc({ listener });
      if (implicitTls) mTls.inc({ listener, result: "success" });
      mConnOpen.inc({ listener });
    },
    connectionClosed: (listener) => mConnOpen.inc({ listener }, -1),
    refused: (code) => mRejected.inc({ code }),
    defenceReject: (reason) => mDefence.inc({ reason }),
    dkimSigned: (domain) => mDkimSigned.inc({ domain }),
    authCheck: (check, result) => mAuthChecks.inc({ check, result }),
  };
}
