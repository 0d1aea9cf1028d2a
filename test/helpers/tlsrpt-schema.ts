/**
 * The RFC 8460 §4.4 aggregate report schema as checks (no JSON-schema library needed): required members, their
 * types, RFC 3339 dates, the §4.3 result types. Returns the violations; empty = valid.
 */
/** RFC 8460 §4.3 result types. */
const RESULT_TYPES = new Set([
  "starttls-not-supported",
  "certificate-host-mismatch",
  "certificate-expired",
  "certificate-not-trusted",
  "validation-failure",
  "tlsa-invalid",
  "dnssec-invalid",
  "dane-required",
  "sts-policy-fetch-error",
  "sts-policy-invalid",
  "sts-webpki-invalid",
]);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export function schemaViolations(r: unknown): string[] {
  const v: string[] = [];
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
  const isInt = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
  if (!isObj(r)) return ["report is not an object"];
  for (const k of ["organization-name", "contact-info", "report-id"]) if (typeof r[k] !== "string") v.push(`${k} must be a string`);
  const dr = r["date-range"];
  if (!isObj(dr) || !RFC3339.test(String(dr["start-datetime"])) || !RFC3339.test(String(dr["end-datetime"]))) v.push("date-range");
  if (!Array.isArray(r.policies)) return [...v, "policies must be an array"];
  for (const [i, p] of r.policies.entries()) {
    if (!isObj(p) || !isObj(p.policy) || !isObj(p.summary)) {
      v.push(`policies[${i}] needs policy and summary`);
      continue;
    }
    if (!["sts", "tlsa", "no-policy-found"].includes(String(p.policy["policy-type"]))) v.push(`policies[${i}].policy-type`);
    if (typeof p.policy["policy-domain"] !== "string") v.push(`policies[${i}].policy-domain`);
    const ps = p.policy["policy-string"];
    if (ps !== undefined && !(Array.isArray(ps) && ps.every((x) => typeof x === "string"))) v.push(`policies[${i}].policy-string`);
    const mx = p.policy["mx-host"];
    if (mx !== undefined && !(Array.isArray(mx) && mx.every((x) => typeof x === "string"))) v.push(`policies[${i}].mx-host`);
    if (!isInt(p.summary["total-successful-session-count"]) || !isInt(p.summary["total-failure-session-count"])) v.push(`policies[${i}].summary`);
    const fd = p["failure-details"];
    if (fd === undefined) continue;
    if (!Array.isArray(fd)) {
      v.push(`policies[${i}].failure-details`);
      continue;
    }
    for (const [j, f] of fd.entries()) {
      if (!isObj(f) || !RESULT_TYPES.has(String(f["result-type"])) || !isInt(f["failed-session-count"])) v.push(`policies[${i}].failure-details[${j}]`);
      else if (f["receiving-mx-hostname"] !== undefined && typeof f["receiving-mx-hostname"] !== "string") v.push(`policies[${i}].failure-details[${j}].receiving-mx-hostname`);
    }
  }
  return v;
}

