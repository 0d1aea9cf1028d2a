/** The human summary of a load run (the JSON form is the LoadResult itself). */
import type { Percentiles } from "./histogram.ts";
import type { LoadResult } from "./load.ts";
import { formatCount, formatSize } from "./units.ts";

function lat(name: string, p: Percentiles): string {
  const f = (v: number): string => v.toFixed(2).padStart(9);
  return `  ${name.padEnd(22)} ${f(p.p50)} ${f(p.p90)} ${f(p.p99)} ${f(p.max)}   (${formatCount(p.count)})`;
}

export function formatSummary(r: LoadResult): string {
  const sizes = r.sizes.map((s) => (r.sizes.length > 1 ? `${formatSize(s.bytes)}:${s.weight}` : formatSize(s.bytes))).join(",");
  const mode = [r.pipelining ? "pipelining" : "", r.starttls ? "starttls" : "", r.auth ? "auth" : ""].filter(Boolean).join(", ");
  const lines = [
    `target ${r.target}: ${r.connections} sessions, ${sizes}, ${r.rcpts} rcpt${r.rcpts > 1 ? "s" : ""}${mode ? `, ${mode}` : ""}`,
    `accepted ${formatCount(r.accepted)} of ${formatCount(r.attempted)} in ${(r.elapsedMs / 1000).toFixed(2)} s: ` +
      `${formatCount(r.msgsPerSec)} msgs/s, ${r.mbPerSec.toFixed(2)} MB/s`,
    `errors ${r.errors} (failed messages ${r.failed}, connection errors ${r.connectionErrors})` +
      (r.firstError ? `; first: ${r.firstError}` : ""),
    `latency ms                   p50       p90       p99       max   (count)`,
    lat("connect -> banner", r.latencyMs.connect),
    lat("MAIL -> 250", r.latencyMs.mail),
    lat("end of data -> 250", r.latencyMs.data),
    `replies ${Object.entries(r.replies)
      .map(([c, n]) => `${c}: ${formatCount(n)}`)
      .join(", ")}`,
  ];
  if (r.maildir) {
    const m = r.maildir;
    lines.push(
      `maildir ${m.glob}: ${formatCount(m.delivered)} of ${formatCount(m.expected - m.baseline)} delivered` +
        (m.complete
          ? ` in ${(m.elapsedMs / 1000).toFixed(2)} s end to end: ${formatCount(m.msgsPerSec)} msgs/s`
          : ` (incomplete after ${(m.elapsedMs / 1000).toFixed(1)} s)`),
    );
  }
  lines.push(r.ok ? "result: ok" : "result: FAILED (errors above the threshold, nothing accepted, or messages missing)");
  return lines.join("\n");
}
