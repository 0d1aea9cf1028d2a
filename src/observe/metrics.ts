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

function labelText(labels: Labels): string {
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
  render(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k} ${v}`);
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
    return [`${this.name} ${this.read()}`];
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
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }
  render(): string[] {
    const lines = this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.counts[i]}`);
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines;
  }
}

export class Registry {
  private readonly families: Family[] = [];
  add<T extends Family>(f: T): T {
    this.families.push(f);
    return f;
  }
  render(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    }
    return out.join("\n") + "\n";
  }
}
