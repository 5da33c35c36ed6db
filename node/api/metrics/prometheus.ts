// A small Prometheus text exposition (format 0.0.4): counters, gauges and histograms with labels. Values may be
// bigint (wei amounts exceed 2^53; the format's numbers are written as decimal text, so they stay exact).

type Labels = Record<string, string>;
type Value = number | bigint;

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

function labelText(labels: Labels, extra: Labels = {}): string {
  const all = { ...labels, ...extra };
  const keys = Object.keys(all);
  if (keys.length === 0) return "";
  const escape = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${escape(all[k])}"`).join(",")}}`;
}

function numberText(v: Value): string {
  if (typeof v === "bigint") return v.toString();
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** A value per label set, set or added to. */
class Series {
  readonly #values = new Map<string, { labels: Labels; value: Value }>();

  add(labels: Labels, delta: Value): void {
    const key = labelText(labels);
    const entry = this.#values.get(key);
    if (!entry) this.#values.set(key, { labels, value: delta });
    else
      entry.value =
        typeof entry.value === "bigint" || typeof delta === "bigint"
          ? BigInt(entry.value) + BigInt(delta)
          : entry.value + delta;
  }

  set(labels: Labels, value: Value): void {
    this.#values.set(labelText(labels), { labels, value });
  }

  lines(name: string): string[] {
    return [...this.#values.values()].map((e) => `${name}${labelText(e.labels)} ${numberText(e.value)}`);
  }
}

export class Counter implements Family {
  readonly type = "counter";
  readonly name: string;
  readonly help: string;
  readonly #series = new Series();
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  inc(labels: Labels = {}, delta: Value = 1): void {
    this.#series.add(labels, delta);
  }
  render(): string[] {
    return this.#series.lines(this.name);
  }
}

export class Gauge implements Family {
  readonly type = "gauge";
  readonly name: string;
  readonly help: string;
  readonly #series = new Series();
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  set(value: Value, labels: Labels = {}): void {
    this.#series.set(labels, value);
  }
  render(): string[] {
    return this.#series.lines(this.name);
  }
}

export class Histogram implements Family {
  readonly type = "histogram";
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  readonly #data = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.buckets = [...buckets].sort((a, b) => a - b);
  }
  observe(value: number, labels: Labels = {}): void {
    const key = labelText(labels);
    let d = this.#data.get(key);
    if (!d) this.#data.set(key, (d = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) d.counts[i]++;
    d.sum += value;
    d.count++;
  }
  render(): string[] {
    const out: string[] = [];
    for (const d of this.#data.values()) {
      this.buckets.forEach((le, i) =>
        out.push(`${this.name}_bucket${labelText(d.labels, { le: String(le) })} ${d.counts[i]}`),
      );
      out.push(`${this.name}_bucket${labelText(d.labels, { le: "+Inf" })} ${d.count}`);
      out.push(
        `${this.name}_sum${labelText(d.labels)} ${d.sum}`,
        `${this.name}_count${labelText(d.labels)} ${d.count}`,
      );
    }
    return out;
  }
}

/** Latency buckets in seconds, 1 ms to 60 s. */
export const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class MetricsRegistry {
  readonly #families: Family[] = [];

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.#add(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets: readonly number[] = SECONDS_BUCKETS): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  /** The exposition text: HELP and TYPE for every family, then its samples. */
  render(): string {
    const lines: string[] = [];
    for (const f of this.#families) {
      lines.push(
        `# HELP ${f.name} ${f.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`,
        `# TYPE ${f.name} ${f.type}`,
      );
      lines.push(...f.render());
    }
    return `${lines.join("\n")}\n`;
  }

  #add<F extends Family>(family: F): F {
    if (this.#families.some((f) => f.name === family.name))
      throw new Error(`metric ${family.name} is registered twice`);
    this.#families.push(family);
    return family;
  }
}
