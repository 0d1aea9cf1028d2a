/**
 * A small Prometheus text exposition (format 0.0.4): counters and gauges with labels, and histograms.
 * Hand-written rather than prom-client, which is Node-centric (ARCHITECTURE.md); this is all we need.
 */

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** Rendered label sets by a cheap raw key: inc() runs per command and per message, so no regex there. */
const labelCache = new Map<string, string>();
const LABEL_CACHE_MAX = 10_000;

/** Sample values and `le` bounds as the text format spells them: Go float syntax, `+Inf`, `-Inf`, `NaN`. */
export function formatValue(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v); // NaN prints as "NaN"; finite numbers print in a syntax Go's ParseFloat reads
}

/** HELP docstrings escape only backslash and line feed (text format 0.0.4). */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** One-label sets ({listener}, {code}) by name, then value: no key string is built for them. */
const singleCache = new Map<string, Map<string, string>>();

function labelText(labels: Labels): string {
  let only: string | undefined;
  let count = 0;
  for (const k in labels) {
    if (++count > 1) break;
    only = k;
  }
  if (count === 1) {
    const v = labels[only!]!;
    let byValue = singleCache.get(only!);
    if (byValue === undefined) singleCache.set(only!, (byValue = new Map()));
    let text = byValue.get(v);
    if (text === undefined) {
      text = `{${only}="${escapeLabel(v)}"}`;
      if (byValue.size < LABEL_CACHE_MAX) byValue.set(v, text);
    }
    return text;
  }
  let raw = "";
  for (const k in labels) raw += k + "\x00" + labels[k] + "\x01";
  if (raw === "") return "";
  let text = labelCache.get(raw);
  if (text === undefined) {
    text = "{" + Object.keys(labels).map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",") + "}";
    if (labelCache.size < LABEL_CACHE_MAX) labelCache.set(raw, text);
  }
  return text;
}

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

/** One labelled series of a Counter, bound once so that hot paths update it without building the label text. */
export interface Series {
  inc(by?: number): void;
  set(value: number): void;
  get(): number;
}

export class Counter implements Family {
  readonly type: "counter" | "gauge";
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    gauge = false,
  ) {
    this.type = gauge ? "gauge" : "counter";
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = labelText(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  set(labels: Labels, value: number): void {
    this.values.set(labelText(labels), value);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0;
  }
  /** The series for `labels`; it appears in the exposition (at 0) from now on. */
  bind(labels: Labels = {}): Series {
    const k = labelText(labels);
    const values = this.values;
    if (!values.has(k)) values.set(k, 0);
    return {
      inc: (by = 1) => void values.set(k, values.get(k)! + by),
      set: (v) => void values.set(k, v),
      get: () => values.get(k)!,
    };
  }
  render(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k} ${formatValue(v)}`);
  }
}

/** A gauge read at scrape time. */
export class GaugeFn implements Family {
  readonly type = "gauge" as const;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}
  render(): string[] {
    return [`${this.name} ${formatValue(this.read())}`];
  }
}

export class Histogram implements Family {
  readonly type = "histogram" as const;
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: number[],
  ) {
    // The exposition needs strictly increasing finite upper bounds; +Inf is implicit.
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]!) || (i > 0 && !(buckets[i]! > buckets[i - 1]!))) {
        throw new Error(`histogram ${name}: buckets must be finite and strictly increasing`);
      }
    }
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }
  render(): string[] {
    const lines = this.buckets.map((b, i) => `${this.name}_bucket{le="${formatValue(b)}"} ${this.counts[i]}`);
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${formatValue(this.sum)}`, `${this.name}_count ${this.count}`);
    return lines;
  }
}

export class Registry {
  private readonly families: Family[] = [];
  add<T extends Family>(f: T): T {
    // A family declared twice would make the exposition invalid (one TYPE line per name).
    if (this.families.some((g) => g.name === f.name)) throw new Error(`metric family ${f.name} registered twice`);
    this.families.push(f);
    return f;
  }
  render(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    }
    return out.join("\n") + "\n";
  }
}
