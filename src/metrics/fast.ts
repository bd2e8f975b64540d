/**
 * Counters, a gauge and histograms for the series every request touches, served by prom-client's
 * registry like its own metrics.
 *
 * prom-client finds a series by sorting and joining its label names and values on every call,
 * and validates the labels each time. For the eight series a request touches that measured ~14
 * µs of the gateway's ~120 µs of CPU per `/_ping` (one gateway process, its metrics switched off
 * and on between rounds: docs/performance.md). These find a series by its label values joined in
 * the declared order and hand the registry the values prom-client's own metrics would, so
 * /metrics reads the same (test/unit/metrics-fast.test.ts compares the two), and get() returns
 * what prom-client's get() does. One difference: label names are checked when a series is
 * created, not at every call (TypeScript checks them at every call site), so a later call with an
 * extra label counts in the series of the declared ones instead of throwing.
 */
import type { Registry } from 'prom-client';

export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

/** One line of /metrics, as prom-client's registry reads it from a metric's get(). */
export interface SeriesValue {
  labels: Record<string, string | number>;
  /** A histogram's labels: printed after `le`. */
  sharedLabels?: Record<string, string | number>;
  value: number;
  /** A histogram's `_bucket`, `_sum` or `_count` line. */
  metricName?: string;
  exemplar?: null;
}

export interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: SeriesValue[];
}

interface FastConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
  /** Called (and awaited) before each scrape, as prom-client's `collect`. */
  collect?: () => void | Promise<void>;
}

/** One level of a metric's series index: a label's value to the next level, or to the series. */
type Level = Map<string, unknown>;

abstract class Labelled<L extends string, S extends { labels: LabelValues<L> }> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly aggregator = 'sum' as const;
  /** Every series, in the order created (as prom-client prints them). */
  protected readonly series: S[] = [];
  private index: Level = new Map();
  private readonly collectHook?: () => void | Promise<void>;

  constructor(c: FastConfig<L>) {
    this.name = c.name;
    this.help = c.help;
    this.labelNames = c.labelNames;
    this.collectHook = c.collect;
    for (const r of c.registers) r.registerMetric(this as never);
  }

  /**
   * The series of these label values, created (and its labels checked) on first use. Looked up
   * one label at a time, a Map per level: the values are mostly constant strings whose hashes
   * V8 keeps, where a key joined from them would be a new string to hash at every call.
   */
  protected find(labels: LabelValues<L>): S {
    const last = this.labelNames.length - 1;
    let level: Level | undefined = this.index;
    for (let i = 0; i < last && level !== undefined; i++) level = level.get(this.value(labels, i)) as Level | undefined;
    return (level?.get(this.value(labels, last)) as S | undefined) ?? this.add(labels);
  }

  /** The value of label `i` as the index keys it (a metric without labels has one series, ''). */
  private value(labels: LabelValues<L>, i: number): string {
    return i < 0 ? '' : String(labels[this.labelNames[i]!]);
  }

  private add(labels: LabelValues<L>): S {
    for (const n of Object.keys(labels)) {
      if (!this.labelNames.includes(n as L)) throw new Error(`Added label "${n}" is not included in initial labelset: ${JSON.stringify(this.labelNames)}`);
    }
    const last = this.labelNames.length - 1;
    let level = this.index;
    for (let i = 0; i < last; i++) {
      const value = this.value(labels, i);
      let next = level.get(value) as Level | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    // A copy: the caller's object may be reused or changed later.
    const s = this.create({ ...labels });
    level.set(this.value(labels, last), s);
    this.series.push(s);
    return s;
  }

  protected abstract create(labels: LabelValues<L>): S;

  protected async collected(): Promise<void> {
    await this.collectHook?.();
  }

  reset(): void {
    this.series.length = 0;
    this.index = new Map();
  }
}

interface Cell<L extends string> {
  labels: LabelValues<L>;
  value: number;
}

/** As prom-client's gauge: any number (NaN and infinities included), 1 when omitted. */
function gaugeDelta(value: number | undefined): number {
  if (value === undefined) return 1;
  if (typeof value !== 'number') throw new TypeError(`Delta is not a valid number: ${String(value)}`);
  return value;
}

/** A metric with one number per series (counter, gauge). */
abstract class Valued<L extends string> extends Labelled<L, Cell<L>> {
  abstract readonly type: 'counter' | 'gauge';

  protected create(labels: LabelValues<L>): Cell<L> {
    return { labels, value: 0 };
  }

  async get(): Promise<MetricData> {
    await this.collected();
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series] as SeriesValue[] };
  }
}

export class FastCounter<L extends string> extends Valued<L> {
  readonly type = 'counter' as const;

  /** As prom-client's counter: an infinity or a negative value throws (NaN does not), 1 when omitted. */
  inc(labels: LabelValues<L>, value?: number): void {
    if (value && !Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    if (value !== undefined && value < 0) throw new Error('It is not possible to decrease a counter');
    this.find(labels).value += value ?? 1;
  }
}

export class FastGauge<L extends string> extends Valued<L> {
  readonly type = 'gauge' as const;

  inc(labels: LabelValues<L>, value?: number): void {
    this.find(labels).value += gaugeDelta(value);
  }

  dec(labels: LabelValues<L>, value?: number): void {
    this.find(labels).value -= gaugeDelta(value);
  }

  set(labels: LabelValues<L>, value: number): void {
    if (typeof value !== 'number') throw new TypeError(`Value is not a valid number: ${String(value)}`);
    this.find(labels).value = value;
  }
}

interface Distribution<L extends string> {
  labels: LabelValues<L>;
  /** Observations per bucket (not cumulative); the last counts those above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

export class FastHistogram<L extends string> extends Labelled<L, Distribution<L>> {
  readonly type = 'histogram' as const;
  private readonly bounds: readonly number[];

  constructor(c: FastConfig<L> & { buckets: readonly number[] }) {
    super(c);
    this.bounds = [...c.buckets].sort((a, b) => a - b);
  }

  protected create(labels: LabelValues<L>): Distribution<L> {
    return { labels, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
  }

  observe(labels: LabelValues<L>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const d = this.find(labels);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    d.counts[i]!++;
    d.sum += value;
    d.count++;
  }

  /** What prom-client's get() returns: each line's labels with the series' own merged in. */
  async get(): Promise<MetricData> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } }));
    return data;
  }

  /** What the registry prints, as prom-client's: per series its buckets (cumulative), `+Inf`, `_sum`, `_count`. */
  async getForPromString(): Promise<MetricData> {
    await this.collected();
    const bucket = `${this.name}_bucket`;
    const values: SeriesValue[] = [];
    for (const d of this.series) {
      const shared = d.labels as Record<string, string | number>;
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += d.counts[i]!;
        values.push({ labels: { le: this.bounds[i]! }, sharedLabels: shared, value: acc, metricName: bucket, exemplar: null });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: shared, value: d.count, metricName: bucket, exemplar: null });
      values.push({ labels: {}, sharedLabels: shared, value: d.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: shared, value: d.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
