/**
 * How the defence stages tell the world about a refusal: one callback that app/ turns into the `defence.reject`
 * log line and the `ringmta_defence_rejects_total{reason}` counter (the stages never see the metrics registry).
 */

/** The reasons, as the metric's label values. */
export type DefenceReason = "dnsbl" | "pregreet" | "greylist" | "rate_limit";

/** `fields` always has `client`; then what the reason names (the zone, the rate-limit key and value, ...). */
export type DefenceReport = (reason: DefenceReason, fields: Record<string, unknown>) => void;

/** How the stages log what is not a refusal (a DNS list that failed, a state file that could not be read). */
export interface DefenceLog {
  warn(event: string, fields: Record<string, unknown>): void;
  error(event: string, fields: Record<string, unknown>): void;
}
