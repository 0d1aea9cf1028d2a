/**
 * A small, strict parser of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for tests that scrape /metrics.
 *
 * Stricter than Prometheus itself where the format says "should": every sample must belong to a family declared
 * by a `# TYPE` line that precedes it; a family's lines form one group; no series appears twice; counters are
 * non-negative; histogram buckets come in increasing `le` order with non-decreasing counts, end in `+Inf`, and
 * `_count` equals the `+Inf` bucket, with a `_sum` beside it. Any violation throws an ExpositionError naming the
 * line.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";
export type Labels = Record<string, string>;

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`, ... for histograms). */
  name: string;
  labels: Labels;
  value: number;
  timestamp?: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

export type Exposition = Map<string, MetricFamily>;

export class ExpositionError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TIMESTAMP = /^-?\d+$/;
const TYPES: ReadonlySet<string> = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** A sample value: a Go-style float, or NaN / +Inf / -Inf as the format spells them. */
export function parseValue(s: string): number | null {
  if (s === "NaN") return NaN;
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  return FLOAT.test(s) ? Number(s) : null;
}

function seriesKey(name: string, labels: Labels): string {
  return name + JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

/** HELP docstrings escape only `\\` and `\n`. */
function unescapeHelp(s: string, line: number): string {
  return s.replace(/\\(.?)/g, (_m, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new ExpositionError(line, `invalid escape "\\${c}" in HELP`);
  });
}

/** Parses `{a="x",b="y"}` starting at `at` (the `{`); returns the labels and the index after `}`. */
function parseLabels(s: string, at: number, line: number): [Labels, number] {
  const labels: Labels = {};
  let i = at + 1;
  for (;;) {
    if (s[i] === "}") return [labels, i + 1];
    const m = LABEL_NAME.exec(s.slice(i));
    if (!m) throw new ExpositionError(line, `bad label name at column ${i + 1}`);
    const name = m[0];
    if (name.startsWith("__")) throw new ExpositionError(line, `label name ${name} is reserved`);
    if (Object.hasOwn(labels, name)) throw new ExpositionError(line, `duplicate label ${name}`);
    i += name.length;
    if (s[i] !== "=" || s[i + 1] !== '"') throw new ExpositionError(line, `expected ="...", after label ${name}`);
    i += 2;
    let value = "";
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new ExpositionError(line, `unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === "\\") {
        const e = s[i + 1];
        if (e === "\\" || e === '"') value += e;
        else if (e === "n") value += "\n";
        else throw new ExpositionError(line, `invalid escape "\\${e ?? ""}" in label ${name}`);
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    labels[name] = value;
    i++;
    if (s[i] === ",") i++;
    else if (s[i] !== "}") throw new ExpositionError(line, `expected , or } after label ${name}`);
  }
}

/** The declared family a sample name belongs to (histograms: _bucket/_sum/_count; summaries: _sum/_count). */
function familyOf(name: string, fams: Exposition): MetricFamily | undefined {
  const exact = fams.get(name);
  if (exact && exact.type !== "histogram") return exact;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const f = fams.get(name.slice(0, -suffix.length));
    if (f?.type === "histogram") return f;
    if (f?.type === "summary" && suffix !== "_bucket") return f;
  }
  return undefined;
}

function checkHistogram(f: MetricFamily): void {
  const groups = new Map<string, { labels: Labels; buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = seriesKey("", rest);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { labels: rest, buckets: [] }));
    if (s.name === `${f.name}_bucket`) g.buckets.push([parseValue(le!)!, s.value]);
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else g.count = s.value;
  }
  for (const g of groups.values()) {
    const where = `histogram ${f.name}${JSON.stringify(g.labels)}`;
    if (g.buckets.length === 0) throw new ExpositionError(0, `${where} has no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new ExpositionError(0, `${where}: buckets not in increasing le order`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new ExpositionError(0, `${where}: bucket counts decrease`);
    }
    const last = g.buckets[g.buckets.length - 1]!;
    if (last[0] !== Infinity) throw new ExpositionError(0, `${where} has no le="+Inf" bucket`);
    if (g.count === undefined || g.sum === undefined) throw new ExpositionError(0, `${where} lacks _sum or _count`);
    if (g.count !== last[1]) throw new ExpositionError(0, `${where}: _count ${g.count} != +Inf bucket ${last[1]}`);
  }
}

/** Parses a whole exposition; throws ExpositionError on the first violation. */
export function parsePrometheus(text: string): Exposition {
  if (text !== "" && !text.endsWith("\n")) throw new ExpositionError(0, "the exposition must end with a line feed");
  const fams: Exposition = new Map();
  const series = new Set<string>();
  /** Families whose sample group has ended (another family's samples came after). */
  const closed = new Set<string>();
  /** Families with a # TYPE line. */
  const typed = new Set<string>();
  let current: MetricFamily | null = null;
  const lines = text.split("\n");
  lines.pop();
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    if (raw.includes("\r")) throw new ExpositionError(n, "carriage return in line (lines end with \\n only)");
    if (raw.trim() === "") return;
    if (raw.startsWith("#")) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+([^ \t]+)(?:[ \t]+(.*))?$/.exec(raw);
      if (!m) return; // any other comment is ignored
      const [, kind, name, rest = ""] = m;
      if (!METRIC_NAME.test(name!) || METRIC_NAME.exec(name!)![0] !== name) throw new ExpositionError(n, `bad metric name ${name}`);
      let f = fams.get(name!);
      if (f && (closed.has(name!) || f.samples.length > 0)) {
        throw new ExpositionError(n, `${kind} for ${name} after its samples`);
      }
      if (!f) fams.set(name!, (f = { name: name!, type: "untyped", samples: [] }));
      if (current && current !== f) closed.add(current.name);
      current = f;
      if (kind === "HELP") {
        if (f.help !== undefined) throw new ExpositionError(n, `second HELP for ${name}`);
        f.help = unescapeHelp(rest, n);
      } else {
        if (typed.has(f.name)) throw new ExpositionError(n, `second TYPE for ${name}`);
        if (!TYPES.has(rest.trim())) throw new ExpositionError(n, `unknown type "${rest}" for ${name}`);
        f.type = rest.trim() as MetricType;
        typed.add(f.name);
      }
      return;
    }
    const nm = METRIC_NAME.exec(raw);
    if (!nm) throw new ExpositionError(n, `bad metric name in ${JSON.stringify(raw)}`);
    const name = nm[0];
    let i = name.length;
    let labels: Labels = {};
    if (raw[i] === "{") [labels, i] = parseLabels(raw, i, n);
    const tail = raw.slice(i);
    const parts = /^[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*$/.exec(tail);
    if (!parts) throw new ExpositionError(n, `expected " value [timestamp]" after ${name}, got ${JSON.stringify(tail)}`);
    const value = parseValue(parts[1]!);
    if (value === null) throw new ExpositionError(n, `bad value ${JSON.stringify(parts[1])} for ${name}`);
    if (parts[2] !== undefined && !TIMESTAMP.test(parts[2])) throw new ExpositionError(n, `bad timestamp ${parts[2]}`);

    const f = familyOf(name, fams);
    if (!f || !typed.has(f.name)) throw new ExpositionError(n, `sample ${name} belongs to no family declared by # TYPE`);
    if (closed.has(f.name)) throw new ExpositionError(n, `samples of ${f.name} are not in one group`);
    if (current && current !== f) closed.add(current.name);
    current = f;
    const key = seriesKey(name, labels);
    if (series.has(key)) throw new ExpositionError(n, `duplicate series ${name}${JSON.stringify(labels)}`);
    series.add(key);
    if (f.type === "counter" && !(value >= 0)) throw new ExpositionError(n, `counter ${name} has value ${parts[1]}`);
    if (f.type === "histogram") {
      const isBucket = name === `${f.name}_bucket`;
      if (isBucket !== Object.hasOwn(labels, "le")) throw new ExpositionError(n, `le label ${isBucket ? "missing on" : "not allowed on"} ${name}`);
      if (isBucket && (parseValue(labels.le!) === null || Number.isNaN(parseValue(labels.le!)))) {
        throw new ExpositionError(n, `bad le ${JSON.stringify(labels.le)}`);
      }
    }
    const sample: Sample = { name, labels, value };
    if (parts[2] !== undefined) sample.timestamp = Number(parts[2]);
    f.samples.push(sample);
  });
  for (const f of fams.values()) {
    if (!typed.has(f.name)) throw new ExpositionError(0, `${f.name} has HELP but no TYPE`);
    if (f.type === "histogram") checkHistogram(f);
  }
  return fams;
}

function labelsMatch(have: Labels, want: Labels, exact: boolean): boolean {
  const wk = Object.keys(want);
  if (exact && wk.length !== Object.keys(have).length) return false;
  return wk.every((k) => have[k] === want[k]);
}

/** Samples named `name` whose labels include `where` (all of them when `where` is empty). */
export function samplesOf(fams: Exposition, name: string, where: Labels = {}): Sample[] {
  const f = familyOf(name, fams);
  return f ? f.samples.filter((s) => s.name === name && labelsMatch(s.labels, where, false)) : [];
}

/** The value of the one series `name{labels}` (labels matched exactly), or 0 when it has no sample yet. */
export function valueOf(fams: Exposition, name: string, labels: Labels = {}): number {
  const f = familyOf(name, fams);
  if (!f) throw new Error(`no family for ${name}`);
  const s = f.samples.find((x) => x.name === name && labelsMatch(x.labels, labels, true));
  return s?.value ?? 0;
}

/** GET http://host:port/metrics: the status, the Content-Type and the parsed body (throws when it does not parse). */
export async function scrape(port: number, host = "127.0.0.1"): Promise<{ status: number; contentType: string; text: string; fams: Exposition }> {
  const res = await fetch(`http://${host}:${port}/metrics`);
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", text, fams: parsePrometheus(text) };
}
