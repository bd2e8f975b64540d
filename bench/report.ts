/**
 * Turns measurements into the Markdown report: one table of absolute figures, ratios to the
 * direct socket, the per-round spread of those ratios (the noise of the run), the issue's
 * targets and a verdict; then the machine, the versions and notes on the load generator.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export type Better = 'higher' | 'lower';

export interface Target {
  /** `ratio`: the figure divided by the direct socket's; `absolute`: the figure itself. */
  readonly kind: 'ratio' | 'absolute';
  readonly better: Better;
  readonly required: number;
  readonly moonshot?: number;
}

export interface Row {
  readonly label: string;
  readonly unit: string;
  /** Figure per endpoint name (`direct`, `dockward`, `haproxy`); undefined = not measured. */
  readonly values: Readonly<Record<string, number | undefined>>;
  readonly better: Better;
  /** Per-round ratios to direct, per endpoint: their min-max is the spread column. */
  readonly roundRatios?: Readonly<Record<string, readonly number[]>>;
  readonly target?: Target;
  /** Decimals for the figures. */
  readonly digits?: number;
  /** Extra text after the label (e.g. what went wrong). */
  readonly note?: string;
}

export interface Report {
  readonly title: string;
  readonly rows: readonly Row[];
  /** Endpoint names in column order; the first is the reference (direct). */
  readonly endpoints: readonly string[];
  readonly context: readonly string[];
  readonly notes: readonly string[];
}

function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function fmtRatio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '-';
  return `${r.toFixed(2)}x`;
}

function cmp(better: Better, v: number, bound: number): boolean {
  return better === 'higher' ? v >= bound : v <= bound;
}

function describeTarget(t: Target, bound: number | undefined, unit: string): string {
  if (bound === undefined) return '';
  const op = t.better === 'higher' ? '>=' : '<=';
  return t.kind === 'ratio' ? `${op} ${bound}x` : `${op} ${fmt(bound, bound < 10 ? 1 : 0)} ${unit}`;
}

/** PASS / FAIL / PASS (moonshot); empty without a target or a figure. */
export function verdict(row: Row, subject = 'dockward'): string {
  const t = row.target;
  if (!t) return '';
  const v = t.kind === 'ratio' ? ratio(row, subject) : row.values[subject];
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  if (!cmp(t.better, v, t.required)) return 'FAIL';
  if (t.moonshot !== undefined && cmp(t.better, v, t.moonshot)) return 'PASS (moonshot)';
  return 'PASS';
}

export function ratio(row: Row, subject: string, reference = 'direct'): number | undefined {
  const a = row.values[subject];
  const b = row.values[reference];
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return a / b;
}

function spread(row: Row, subject: string): string {
  const rs = row.roundRatios?.[subject]?.filter((x) => Number.isFinite(x));
  if (!rs || rs.length < 2) return '';
  return `${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)}`;
}

export function renderTable(r: Report): string {
  const peers = r.endpoints.slice(1);
  const head = ['measurement', ...r.endpoints, ...peers.map((p) => `${p}/direct`), ...peers.map((p) => `${p} spread`), 'required', 'moonshot', 'dockward'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 || i === head.length - 1 ? '---' : '---:')).join('|')}|`];
  for (const row of r.rows) {
    const label = `${row.label} (${row.unit})${row.note ? ` ${row.note}` : ''}`;
    const cells = [
      label,
      ...r.endpoints.map((e) => fmt(row.values[e], row.digits ?? 0)),
      ...peers.map((p) => fmtRatio(ratio(row, p))),
      ...peers.map((p) => spread(row, p)),
      row.target ? describeTarget(row.target, row.target.required, row.unit) : '',
      row.target ? describeTarget(row.target, row.target.moonshot, row.unit) : '',
      verdict(row),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export function renderReport(r: Report): string {
  const out = [`### ${r.title}`, '', ...r.context.map((c) => `- ${c}`), '', renderTable(r), ''];
  if (r.notes.length > 0) {
    out.push('Notes:', '', ...r.notes.map((n) => `- ${n}`), '');
  }
  return out.join('\n');
}

export const BEGIN = '<!-- bench:begin (written by npm run bench; edit outside these markers) -->';
export const END = '<!-- bench:end -->';

/** Replaces the generated block of docs/performance.md (keeping the prose around it). */
export function writeDoc(file: string, block: string): void {
  const generated = `${BEGIN}\n\n${block.trim()}\n\n${END}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Performance\n\n';
  const b = text.indexOf(BEGIN);
  const e = text.indexOf(END);
  if (b >= 0 && e > b) text = text.slice(0, b) + generated + text.slice(e + END.length);
  else text = `${text.trimEnd()}\n\n## Last result\n\n${generated}\n`;
  writeFileSync(file, text);
}
