/**
 * Inline SVG charts for the dashboard, drawn by hand: a stacked bar chart of requests per
 * minute by decision (with <title>/<desc> and a visually hidden table for screen readers), and
 * horizontal bar lists. Colours come from classes in admin.css (the page's CSP allows no
 * inline style), and every series also has a text label: colour is never the only cue.
 */
import { h } from './common.js';
import { uid } from './admin-core.js';

const SVG = 'http://www.w3.org/2000/svg';

function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  ...children: (Node | string)[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

export interface Bucket {
  t: number;
  allow: number;
  deny: number;
  step_up: number;
  error: number;
}

export const SERIES = [
  { key: 'allow', label: 'Allowed', cls: 'c-allow' },
  { key: 'deny', label: 'Denied', cls: 'c-deny' },
  { key: 'step_up', label: 'Step-up asked', cls: 'c-step' },
  { key: 'error', label: 'Error', cls: 'c-error' },
] as const;

/** 1, 2, 5 × 10ⁿ at or above v. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  const f = v / e;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}

function fmtRate(v: number): string {
  if (v === 0) return '0';
  if (v >= 10) return String(Math.round(v));
  return String(Math.round(v * 10) / 10);
}

/** Merge consecutive buckets so that at most `max` bars are drawn. */
export function coarsen(buckets: Bucket[], bucketMs: number, max: number): { buckets: Bucket[]; bucketMs: number } {
  if (buckets.length <= max) return { buckets, bucketMs };
  const k = Math.ceil(buckets.length / max);
  const out: Bucket[] = [];
  for (let i = 0; i < buckets.length; i += k) {
    const group = buckets.slice(i, i + k);
    out.push({
      t: group[0]?.t ?? 0,
      allow: group.reduce((a, b) => a + b.allow, 0),
      deny: group.reduce((a, b) => a + b.deny, 0),
      step_up: group.reduce((a, b) => a + b.step_up, 0),
      error: group.reduce((a, b) => a + b.error, 0),
    });
  }
  return { buckets: out, bucketMs: bucketMs * k };
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });

/**
 * Requests per minute by decision, stacked, one bar per bucket. Returns a figure holding the
 * chart, a legend and the same numbers as a visually hidden table.
 */
export function requestsChart(buckets: Bucket[], bucketMs: number, windowLabel: string): HTMLElement {
  const W = 720;
  const H = 260;
  const m = { top: 14, right: 10, bottom: 30, left: 46 };
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  const perMin = 60_000 / (bucketMs > 0 ? bucketMs : 60_000);
  const rate = (b: Bucket) => (b.allow + b.deny + b.step_up + b.error) * perMin;
  const total = buckets.reduce((a, b) => a + b.allow + b.deny + b.step_up + b.error, 0);
  const peak = buckets.reduce((a, b) => Math.max(a, rate(b)), 0);
  const yMax = niceMax(peak);
  const y = (v: number) => m.top + ih - (v / yMax) * ih;

  const titleId = uid('chart-title');
  const descId = uid('chart-desc');
  const sums = SERIES.map((x) => `${buckets.reduce((a, b) => a + b[x.key], 0)} ${x.label.toLowerCase()}`);
  const svg = s(
    'svg',
    {
      viewBox: `0 0 ${W} ${H}`,
      class: 'chart',
      role: 'img',
      'aria-labelledby': `${titleId} ${descId}`,
      preserveAspectRatio: 'xMidYMid meet',
    },
    s('title', { id: titleId }, `Requests per minute by decision, last ${windowLabel}`),
    s(
      'desc',
      { id: descId },
      total === 0
        ? 'No requests in this window.'
        : `${total} requests in ${buckets.length} intervals: ${sums.join(', ')}. Peak ${fmtRate(peak)} per minute. The table below lists each interval.`,
    ),
  );

  // Grid and y axis labels.
  const grid = s('g', { class: 'chart-grid', 'aria-hidden': 'true' });
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const yy = y(v);
    grid.append(
      s('line', { x1: m.left, x2: W - m.right, y1: yy, y2: yy }),
      s('text', { x: m.left - 6, y: yy + 4, 'text-anchor': 'end', class: 'chart-label' }, fmtRate(v)),
    );
  }
  grid.append(
    s(
      'text',
      {
        x: 12,
        y: m.top + ih / 2,
        'text-anchor': 'middle',
        class: 'chart-label',
        transform: `rotate(-90 12 ${m.top + ih / 2})`,
      },
      'per minute',
    ),
  );
  svg.append(grid);

  // Bars: each bucket a group with a tooltip title.
  const n = Math.max(buckets.length, 1);
  const bw = iw / n;
  const gap = bw > 4 ? Math.min(2, bw * 0.2) : 0;
  const long = bucketMs * buckets.length > 86_400_000 / 2;
  const fmt = (t: number) => (long ? dayTimeFmt : timeFmt).format(new Date(t));
  const bars = s('g', { class: 'chart-bars' });
  buckets.forEach((b, i) => {
    const x = m.left + i * bw + gap / 2;
    let base = 0;
    const g = s('g');
    const parts = SERIES.filter((x) => b[x.key] > 0).map((x) => `${x.label.toLowerCase()} ${b[x.key]}`);
    g.append(s('title', {}, `${fmt(b.t)}: ${parts.length === 0 ? 'no requests' : parts.join(', ')}`));
    for (const ser of SERIES) {
      const v = b[ser.key] * perMin;
      if (v <= 0) continue;
      const top = y(base + v);
      const bottom = y(base);
      g.append(
        s('rect', { x, y: top, width: Math.max(bw - gap, 0.5), height: Math.max(bottom - top, 0.5), class: ser.cls }),
      );
      base += v;
    }
    bars.append(g);
  });
  svg.append(bars);

  // X axis: about six time labels.
  const axis = s('g', { class: 'chart-axis', 'aria-hidden': 'true' });
  axis.append(s('line', { x1: m.left, x2: W - m.right, y1: m.top + ih, y2: m.top + ih }));
  const step = Math.max(1, Math.ceil(buckets.length / 6));
  for (let i = 0; i < buckets.length; i += step) {
    const b = buckets[i] as Bucket;
    axis.append(
      s('text', { x: m.left + i * bw + bw / 2, y: H - 10, 'text-anchor': 'middle', class: 'chart-label' }, fmt(b.t)),
    );
  }
  if (total === 0) {
    axis.append(
      s(
        'text',
        { x: m.left + iw / 2, y: m.top + ih / 2, 'text-anchor': 'middle', class: 'chart-empty' },
        'No requests',
      ),
    );
  }
  svg.append(axis);

  const legend = h(
    'ul',
    { class: 'legend', 'aria-hidden': 'true' },
    ...SERIES.map((x) => h('li', {}, h('span', { class: `swatch ${x.cls}` }), x.label)),
  );

  // The same numbers for screen readers (intervals with no requests are left out).
  const minutes = Math.round(bucketMs / 60_000);
  const tbl = h(
    'table',
    { class: 'visually-hidden' },
    h(
      'caption',
      {},
      `Requests by decision per ${minutes >= 1 ? `${minutes}-minute` : `${Math.round(bucketMs / 1000)}-second`} interval, last ${windowLabel} (intervals with no requests are left out)`,
    ),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Interval start'),
        ...SERIES.map((x) => h('th', { scope: 'col' }, x.label)),
      ),
    ),
  );
  const body = h('tbody');
  for (const b of buckets) {
    if (b.allow + b.deny + b.step_up + b.error === 0) continue;
    body.append(h('tr', {}, h('th', { scope: 'row' }, fmt(b.t)), ...SERIES.map((x) => h('td', {}, String(b[x.key])))));
  }
  if (body.childElementCount === 0) body.append(h('tr', {}, h('td', { colspan: '5' }, 'No requests in this window.')));
  tbl.append(body);

  return h('figure', { class: 'chart-figure' }, svg, legend, tbl);
}

export interface BarItem {
  label: Node | string;
  detail?: string;
  count: number;
}

/** A ranked list with a bar per item: the text is the content, the bar is decoration. */
export function barList(label: string, items: BarItem[], empty: string): HTMLElement {
  if (items.length === 0) return h('p', { class: 'empty' }, empty);
  const max = items.reduce((a, b) => Math.max(a, b.count), 0) || 1;
  const list = h('ol', { class: 'hbars', 'aria-label': label });
  for (const it of items) {
    const pct = Math.max((it.count / max) * 100, 0.5);
    const bar = s(
      'svg',
      { class: 'hbar', viewBox: '0 0 100 8', preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false' },
      s('rect', { x: 0, y: 0, width: 100, height: 8, class: 'hbar-track' }),
      s('rect', { x: 0, y: 0, width: pct, height: 8, class: 'hbar-fill' }),
    );
    list.append(
      h(
        'li',
        { class: 'hbar-row' },
        h(
          'span',
          { class: 'hbar-label' },
          it.label,
          it.detail ? h('span', { class: 'hbar-detail' }, ` ${it.detail}`) : null,
        ),
        bar,
        h('span', { class: 'hbar-count' }, it.count.toLocaleString()),
      ),
    );
  }
  return list;
}
