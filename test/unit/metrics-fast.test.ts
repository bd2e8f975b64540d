import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastCounter, FastGauge, FastHistogram } from '../../src/metrics/fast.js';
import { DURATION_BUCKETS, OVERHEAD_BUCKETS } from '../../src/metrics/metrics.js';

/** A small deterministic generator: the same operations go to both registries. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

describe('fast metrics', () => {
  it('print exactly what prom-client prints for the same operations', async () => {
    const a = new Registry();
    const b = new Registry();
    const help = 'h "quoted" \\ back\nslash';
    const pc = new Counter({ name: 't_requests_total', help, labelNames: ['action', 'decision', 'code'], registers: [a] });
    const fc = new FastCounter({ name: 't_requests_total', help, labelNames: ['action', 'decision', 'code'], registers: [b] });
    const ph = new Histogram({ name: 't_duration_seconds', help, labelNames: ['action'], buckets: DURATION_BUCKETS, registers: [a] });
    const fh = new FastHistogram({ name: 't_duration_seconds', help, labelNames: ['action'], buckets: DURATION_BUCKETS, registers: [b] });
    const po = new Histogram({ name: 't_overhead_seconds', help, labelNames: ['action'], buckets: OVERHEAD_BUCKETS, registers: [a] });
    const fo = new FastHistogram({ name: 't_overhead_seconds', help, labelNames: ['action'], buckets: OVERHEAD_BUCKETS, registers: [b] });
    const pg = new Gauge({ name: 't_active', help, labelNames: ['kind'], registers: [a] });
    const fg = new FastGauge({ name: 't_active', help, labelNames: ['kind'], registers: [b] });
    let collected = 0;
    const pb = new Counter({ name: 't_bytes_total', help, labelNames: ['direction', 'kind'], registers: [a], collect: () => void pb.inc({ direction: 'in', kind: 'logs' }, 5) });
    const fb = new FastCounter({ name: 't_bytes_total', help, labelNames: ['direction', 'kind'], registers: [b], collect: () => void (collected++, fb.inc({ direction: 'in', kind: 'logs' }, 5)) });

    const r = rng(7);
    // Label values that need escaping, and values on, between and beyond the bucket bounds.
    const actions = ['container.list', 'container.kill', 'unclassified', 'we"ird\\na\nme'];
    const values = [0, 0.00001, 0.00025, 0.0003, 0.001, 0.5, 1, 2.5, 299, 300, 301, 1e6, ...DURATION_BUCKETS];
    for (const kind of ['attach', 'logs', 'request']) {
      pg.set({ kind }, 0);
      fg.set({ kind }, 0);
    }
    for (let i = 0; i < 3000; i++) {
      const action = pick(r, actions);
      const decision = pick(r, ['allow', 'deny']);
      const code = pick(r, ['200', '403', '101']);
      // Callers name the labels in different orders: prom-client prints the first one's order.
      const labels = r() < 0.5 ? { action, decision, code } : { code, action, decision };
      const n = pick(r, [undefined, 0, 1, 3, 0.5]);
      pc.inc(labels, n);
      fc.inc(labels, n);
      const v = pick(r, values);
      ph.observe({ action }, v);
      fh.observe({ action }, v);
      po.observe({ action }, v / 1000);
      fo.observe({ action }, v / 1000);
      const kind = pick(r, ['attach', 'logs', 'request']);
      if (r() < 0.5) {
        pg.inc({ kind });
        fg.inc({ kind });
      } else {
        pg.dec({ kind }, 2);
        fg.dec({ kind }, 2);
      }
      const dir = pick(r, ['in', 'out']);
      pb.inc({ direction: dir, kind }, 1000);
      fb.inc({ direction: dir, kind }, 1000);
    }
    const expected = await a.metrics();
    expect(await b.metrics()).toBe(expected);
    expect(collected).toBe(1);
    // What code reading the metrics directly gets (get(), as the Metrics interface offers it).
    for (const [p, f] of [[pc, fc], [ph, fh], [po, fo], [pg, fg]] as const) {
      const want = (await p.get()).values.map((v) => ({ ...v, labels: { ...v.labels } }));
      expect((await f.get()).values).toEqual(want);
    }
    // Buckets, sums and escaped label values are all in the text compared.
    expect(expected).toContain('t_duration_seconds_bucket{le="0.00025",action="container.list"}');
    expect(expected).toContain('le="+Inf"');
    expect(expected).toContain('t_overhead_seconds_sum{action="we\\"ird\\\\na\\nme"}');
  });

  it('refuse what prom-client refuses, and accept what it accepts', () => {
    const calls: [string, (c: Counter<'kind'> | FastCounter<'kind'>) => void][] = [
      ['an undeclared label', (c) => c.inc({ kind: 'a', user: 'bob' } as never)],
      ['a negative increment', (c) => c.inc({ kind: 'a' }, -1)],
      ['an infinite increment', (c) => c.inc({ kind: 'a' }, Number.POSITIVE_INFINITY)],
      ['NaN', (c) => c.inc({ kind: 'b' }, Number.NaN)],
      ['zero', (c) => c.inc({ kind: 'c' }, 0)],
    ];
    for (const [what, call] of calls) {
      const threw = (c: Counter<'kind'> | FastCounter<'kind'>) => {
        try {
          call(c);
          return false;
        } catch {
          return true;
        }
      };
      const p = new Counter({ name: 'x_total', help: 'x', labelNames: ['kind'], registers: [] });
      const f = new FastCounter({ name: 'x_total', help: 'x', labelNames: ['kind'], registers: [] });
      expect(threw(f), what).toBe(threw(p));
    }
    const gauges = [new Gauge({ name: 'g', help: 'g', labelNames: ['kind'], registers: [] }), new FastGauge({ name: 'g', help: 'g', labelNames: ['kind'], registers: [] })];
    for (const g of gauges) {
      g.set({ kind: 'a' }, Number.POSITIVE_INFINITY);
      expect(() => g.set({ kind: 'a' }, 'x' as never)).toThrow(/not a valid number/);
    }
    const h = new FastHistogram({ name: 'x_seconds', help: 'x', labelNames: ['action'], buckets: [1], registers: [] });
    expect(() => h.observe({ action: 'a' }, Number.POSITIVE_INFINITY)).toThrow(/not a valid number/);
  });

  it('awaits a collect hook that returns a promise before reading the values', async () => {
    const r = new Registry();
    const c: FastCounter<'kind'> = new FastCounter({
      name: 'late_total',
      help: 'x',
      labelNames: ['kind'],
      registers: [r],
      collect: async () => {
        await new Promise((res) => setTimeout(res, 5));
        c.inc({ kind: 'a' }, 3);
      },
    });
    expect(await r.metrics()).toContain('late_total{kind="a"} 3');
  });
});
