/** The dashboard: traffic by decision, who and what is busiest, and the counters that need a look. */
import { h } from './common.js';
import { type Bucket, barList, coarsen, requestsChart } from './admin-charts.js';
import { arr, call, done, fail, loading, num, section, str } from './admin-core.js';
import type { View } from './admin-router.js';

interface Stats {
  window: string;
  bucketMs: number;
  buckets: Bucket[];
  topPrincipals: { id: string; type: string; email?: string; count: number }[];
  topEndpoints: { action: string; resource: string; count: number }[];
  requests?: number;
  denials: number;
  stepUps: number;
  authFailures: number;
  /** The window held more records than the server aggregates: the oldest were left out. */
  partial?: boolean;
}

const WINDOWS = [
  { id: '1h', label: '1 hour' },
  { id: '24h', label: '24 hours' },
] as const;

export const dashboard: View = (root, ctx) => {
  let win = ctx.params.get('window') === '24h' ? '24h' : '1h';
  root.append(h('h1', { tabindex: '-1' }, 'Dashboard'));

  const toggles = WINDOWS.map((w) => {
    const b = h('button', { type: 'button', class: 'seg', 'aria-pressed': String(w.id === win) }, w.label);
    b.addEventListener('click', () => {
      if (win === w.id) return;
      win = w.id;
      for (const t of toggles) t.setAttribute('aria-pressed', String(t === b));
      history.replaceState(null, '', `#/dashboard?window=${win}`);
      void load();
    });
    return b;
  });
  const refresh = h('button', { type: 'button', class: 'btn btn-secondary btn-small' }, 'Refresh');
  refresh.addEventListener('click', () => void load());
  root.append(
    h(
      'div',
      { class: 'toolbar' },
      h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' }, ...toggles),
      refresh,
    ),
  );

  const counters = h('div', { class: 'counters-wrap' });
  const chart = h('div', { class: 'chart-wrap' });
  const principals = h('div');
  const endpoints = h('div');
  root.append(
    counters,
    section('Requests per minute', chart),
    h('div', { class: 'two-col' }, section('Busiest principals', principals), section('Busiest endpoints', endpoints)),
  );

  async function load(): Promise<void> {
    for (const c of [counters, chart, principals, endpoints]) loading(c);
    let st: Stats;
    try {
      st = await call<Stats>(`/stats?window=${win}`);
    } catch (err) {
      if (ctx.signal.aborted) return;
      fail(counters, err, 'The statistics could not be loaded');
      for (const c of [chart, principals, endpoints]) done(c, h('p', { class: 'empty' }, 'No data.'));
      return;
    }
    if (ctx.signal.aborted) return;
    const label = WINDOWS.find((w) => w.id === win)?.label ?? win;

    const counter = (name: string, value: unknown, href?: string) =>
      h(
        'div',
        { class: 'counter' },
        h('dt', {}, name),
        h('dd', {}, href ? h('a', { href }, (num(value) ?? 0).toLocaleString()) : (num(value) ?? 0).toLocaleString()),
      );
    done(
      counters,
      h(
        'dl',
        { class: 'counters', 'aria-label': `Last ${label}` },
        counter('Requests', st.requests),
        counter('Denials', st.denials, '#/audit?decision=deny'),
        counter('Step-ups asked', st.stepUps, '#/audit?decision=step_up'),
        counter('Authentication failures', st.authFailures),
      ),
    );

    const buckets = arr<Bucket>(st.buckets).map((b) => ({
      t: num(b.t) ?? 0,
      allow: num(b.allow) ?? 0,
      deny: num(b.deny) ?? 0,
      step_up: num(b.step_up) ?? 0,
      error: num(b.error) ?? 0,
    }));
    const c = coarsen(buckets, num(st.bucketMs) ?? 60_000, 120);
    done(
      chart,
      st.partial === true
        ? h(
            'p',
            { class: 'hint' },
            'This window holds more records than the dashboard counts: only the newest are included.',
          )
        : null,
      requestsChart(c.buckets, c.bucketMs, label),
    );

    done(
      principals,
      barList(
        `Busiest principals, last ${label}`,
        arr<Stats['topPrincipals'][number]>(st.topPrincipals).map((p) => {
          const name = str(p.email) || str(p.id);
          const kind = str(p.type) === 'service_principal' ? 'service principal' : str(p.type);
          return {
            label: str(p.type) === 'user' ? h('a', { href: `#/users/${encodeURIComponent(str(p.id))}` }, name) : name,
            detail: `(${kind})`,
            count: num(p.count) ?? 0,
          };
        }),
        'No requests in this window.',
      ),
    );
    done(
      endpoints,
      barList(
        `Busiest endpoints, last ${label}`,
        arr<Stats['topEndpoints'][number]>(st.topEndpoints).map((e) => ({
          label: str(e.resource),
          detail: str(e.action),
          count: num(e.count) ?? 0,
        })),
        'No requests in this window.',
      ),
    );
  }
  void load();
};
