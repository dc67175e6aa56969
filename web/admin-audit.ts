/**
 * The audit log: filters, a page at a time in chain order, "follow" (polls every 2 s for new
 * records), each record expandable to the authentication event behind it and its chain
 * position, and a chain verification.
 */
import { h } from './common.js';
import {
  arr,
  badge,
  busy,
  button,
  call,
  errorBox,
  fail,
  field,
  fullTime,
  Handled,
  loading,
  num,
  qs,
  section,
  str,
  uid,
} from './admin-core.js';
import type { View } from './admin-router.js';

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

interface AuditRecord {
  seq: number;
  prevHash: string;
  hash: string;
  id: string;
  at: number;
  kind: string;
  actor?: Record<string, Json>;
  request?: Record<string, Json>;
  decision?: { effect: string; reasons: string[] };
  upstream?: Record<string, Json>;
  status?: number;
  outcome?: string;
  reason?: string;
  detail?: Record<string, Json>;
  change?: { op: string; target: string; before?: Record<string, Json>; after?: Record<string, Json> };
}

interface Verify {
  ok: boolean;
  records: number;
  checkpoints: number;
  firstSeq: number | null;
  lastSeq: number | null;
  problem?: { seq: number; what: string };
}

const KINDS = [
  'http.request',
  'auth.register',
  'auth.login',
  'auth.step_up',
  'auth.logout',
  'auth.credential_revoked',
  'auth.credential_renamed',
  'auth.enrollment_issued',
  'auth.recovery_issued',
  'auth.recovery_used',
  'token.issued',
  'token.refused',
  'token.refreshed',
  'token.reuse_detected',
  'token.revoked',
  'admin.change',
  'audit.pruned',
  'audit.started',
];

const FILTERS = ['actor', 'kind', 'action', 'decision', 'since', 'until', 'limit'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

const DECISION_LABEL: Record<string, [string, string]> = {
  allow: ['allow', 'ok'],
  deny: ['deny', 'danger'],
  step_up: ['step-up', 'warn'],
  error: ['error', 'danger'],
};

const POLL_MS = 2_000;

const shortTime = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

const pad = (n: number) => String(n).padStart(2, '0');
/** ISO → the value a datetime-local input shows (local time). */
function toLocalInput(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(/^\d+$/.test(iso) ? Number(iso) : iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function fromLocalInput(v: string): string | undefined {
  if (v === '') return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function text(v: Json | undefined): string {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function facts(pairs: [string, Node | string][]): HTMLElement {
  return h('dl', { class: 'facts compact' }, ...pairs.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function objFacts(o: Record<string, Json> | undefined, order: string[] = [], times: string[] = []): HTMLElement | null {
  if (!o || typeof o !== 'object') return null;
  const keys = [...order.filter((k) => k in o), ...Object.keys(o).filter((k) => !order.includes(k))];
  return facts(
    keys.map((k) => {
      const v = o[k];
      if (times.includes(k) && typeof v === 'number') return [k, `${fullTime(v)} (${v})`];
      return [k, h('span', { class: typeof v === 'string' && v.length > 24 ? 'mono wrap' : 'mono' }, text(v))];
    }),
  );
}

function who(r: AuditRecord): string {
  const a = r.actor ?? {};
  const email = typeof a['email'] === 'string' ? a['email'] : '';
  const id = typeof a['id'] === 'string' ? a['id'] : '';
  const type = typeof a['type'] === 'string' ? a['type'] : 'unknown';
  if (email) return email;
  if (id) return `${type === 'service_principal' ? 'sp' : type}:${id}`;
  return type;
}

function recordRow(r: AuditRecord): HTMLElement {
  const req = r.request ?? {};
  const effect = r.decision?.effect;
  const [dLabel, dKind] = effect ? (DECISION_LABEL[effect] ?? [effect, '']) : ['', ''];
  const at = num(r.at) ?? 0;
  const what =
    typeof req['path'] === 'string'
      ? `${text(req['method'])} ${text(req['path'])}`
      : r.change
        ? `${str(r.change.op)} ${str(r.change.target)}`
        : str(r.reason);
  const summary = h(
    'summary',
    {},
    h('span', { class: 'a-seq mono' }, `#${num(r.seq) ?? '?'}`),
    h('time', { class: 'a-time', datetime: new Date(at).toISOString(), title: fullTime(at) }, shortTime.format(at)),
    h('span', { class: 'a-kind mono' }, str(r.kind)),
    h('span', { class: 'a-who' }, who(r)),
    h('span', { class: 'a-what mono' }, what),
    h(
      'span',
      { class: 'a-result' },
      effect ? badge(dLabel, dKind) : null,
      r.outcome ? badge(str(r.outcome), r.outcome === 'success' ? 'ok' : 'danger') : null,
      num(r.status) !== null ? h('span', { class: 'mono' }, ` ${r.status}`) : null,
    ),
  );
  const body = h('div', { class: 'a-body' });
  const block = (title: string, content: Node | null) => {
    if (content) body.append(h('div', { class: 'a-block' }, h('h3', {}, title), content));
  };
  block(
    'Request',
    r.request ? objFacts(r.request, ['method', 'path', 'action', 'resource', 'ip', 'userAgent', 'requestId']) : null,
  );
  if (r.decision || r.status !== undefined || r.outcome || r.reason) {
    const pairs: [string, Node | string][] = [];
    if (r.decision) {
      pairs.push(['effect', str(r.decision.effect)]);
      pairs.push([
        'reasons',
        arr<string>(r.decision.reasons).length === 0
          ? '—'
          : h('span', { class: 'mono' }, arr<string>(r.decision.reasons).join(', ')),
      ]);
    }
    if (r.status !== undefined) pairs.push(['status', String(r.status)]);
    if (r.outcome) pairs.push(['outcome', str(r.outcome)]);
    if (r.reason) pairs.push(['reason', str(r.reason)]);
    block('Decision', facts(pairs));
  }
  block(
    'Authentication event',
    objFacts(
      r.actor,
      [
        'type',
        'id',
        'email',
        'authEventId',
        'method',
        'credentialId',
        'aaguid',
        'authenticator',
        'uv',
        'authTime',
        'sessionId',
        'tokenId',
        'deviceBound',
        'via',
      ],
      ['authTime'],
    ),
  );
  block('Upstream', objFacts(r.upstream, ['name', 'status', 'latencyMs', 'bytes']));
  if (r.change) {
    block(
      'Change',
      h(
        'div',
        {},
        facts([
          ['op', h('span', { class: 'mono' }, str(r.change.op))],
          ['target', h('span', { class: 'mono' }, str(r.change.target))],
        ]),
        r.change.before ? h('h4', {}, 'Before') : null,
        objFacts(r.change.before),
        r.change.after ? h('h4', {}, 'After') : null,
        objFacts(r.change.after),
      ),
    );
  }
  block('Detail', objFacts(r.detail));
  block(
    'Chain position',
    facts([
      ['seq', String(r.seq)],
      ['prevHash', h('span', { class: 'mono wrap' }, str(r.prevHash))],
      ['hash', h('span', { class: 'mono wrap' }, str(r.hash))],
      ['record id', h('span', { class: 'mono wrap' }, str(r.id))],
    ]),
  );
  return h('li', { class: 'a-row', 'data-seq': String(r.seq) }, h('details', {}, summary, body));
}

export const audit: View = (root, ctx) => {
  root.append(h('h1', { tabindex: '-1' }, 'Audit log'));
  const f: Filters = {};
  for (const k of FILTERS) {
    const v = ctx.params.get(k);
    if (v) f[k] = v;
  }

  // ---- filters ----------------------------------------------------------------------------
  const actor = h('input', { type: 'text', name: 'actor', autocomplete: 'off', spellcheck: 'false', id: 'af-actor' });
  const kindList = uid('kinds');
  const kind = h('input', { type: 'text', name: 'kind', list: kindList, autocomplete: 'off', id: 'af-kind' });
  const action = h('input', {
    type: 'text',
    name: 'action',
    autocomplete: 'off',
    spellcheck: 'false',
    id: 'af-action',
  });
  const decision = h(
    'select',
    { name: 'decision', id: 'af-decision' },
    h('option', { value: '' }, 'Any'),
    h('option', { value: 'allow' }, 'Allow'),
    h('option', { value: 'deny' }, 'Deny'),
    h('option', { value: 'step_up' }, 'Step-up'),
    h('option', { value: 'error' }, 'Error'),
  );
  const since = h('input', { type: 'datetime-local', name: 'since', id: 'af-since' });
  const until = h('input', { type: 'datetime-local', name: 'until', id: 'af-until' });
  const limit = h(
    'select',
    { name: 'limit', id: 'af-limit' },
    ...['50', '100', '500'].map((n) => h('option', { value: n }, n)),
  );
  actor.value = f.actor ?? '';
  kind.value = f.kind ?? '';
  action.value = f.action ?? '';
  decision.value = f.decision ?? '';
  since.value = toLocalInput(f.since);
  until.value = toLocalInput(f.until);
  limit.value = f.limit && ['50', '100', '500'].includes(f.limit) ? f.limit : '100';

  const apply = h('button', { type: 'submit', class: 'btn btn-primary', id: 'af-apply' }, 'Apply filters');
  const clear = h('button', { type: 'button', class: 'btn btn-quiet' }, 'Clear');
  const form = h(
    'form',
    { class: 'form-grid filters', id: 'audit-filters', novalidate: true },
    field('Actor (id)', actor).wrap,
    field('Kind', kind, 'e.g. http.request, admin.change').wrap,
    field('Action', action, 'e.g. serving:invoke').wrap,
    field('Decision', decision).wrap,
    field('From', since).wrap,
    field('Until', until).wrap,
    field('Per page', limit).wrap,
    h('datalist', { id: kindList }, ...KINDS.map((k) => h('option', { value: k }))),
    h('div', { class: 'form-actions' }, apply, clear),
  );

  // ---- toolbar: follow and verify ---------------------------------------------------------
  const followBtn = h(
    'button',
    { type: 'button', class: 'btn btn-secondary', 'aria-pressed': 'false', id: 'audit-follow' },
    'Follow new records',
  );
  const verifyBtn = h('button', { type: 'button', class: 'btn btn-secondary', id: 'audit-verify' }, 'Verify chain');
  const live = h('p', { class: 'hint', role: 'status', 'aria-live': 'polite', id: 'audit-live' });
  const verifyOut = h('div', { id: 'verify-result', role: 'status', 'aria-live': 'polite' });
  const list = h('ol', { class: 'audit-list', id: 'audit-list', 'aria-label': 'Audit records, oldest first' });
  const listBox = h('div', { id: 'audit-results' });
  const more = h('div', { class: 'more' });

  root.append(
    section('Filters', form),
    section('Records', h('div', { class: 'toolbar' }, followBtn, verifyBtn), live, verifyOut, listBox, more),
  );

  // ---- state --------------------------------------------------------------------------------
  let next: string | null = null;
  let maxSeq = -1;
  let lastAt: number | null = null;
  let shown = new Set<number>();
  let following = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<void> = Promise.resolve();

  const query = (extra: Record<string, string | undefined>) =>
    `/audit${qs({
      actor: f.actor,
      kind: f.kind,
      action: f.action,
      decision: f.decision,
      since: f.since,
      until: f.until,
      limit: f.limit ?? '100',
      ...extra,
    })}`;

  /** Append the records not shown yet; returns how many were new. */
  const append = (records: AuditRecord[]): number => {
    let added = 0;
    for (const r of records) {
      const s = num(r.seq);
      if (s === null || shown.has(s)) continue;
      shown.add(s);
      if (s > maxSeq) {
        maxSeq = s;
        lastAt = num(r.at) ?? lastAt;
      }
      list.append(recordRow(r));
      added++;
    }
    return added;
  };

  const renderMore = () => {
    more.replaceChildren();
    if (next !== null && !following)
      more.append(button('Load more', (b) => busy(b, () => serial(loadNext)), 'btn btn-secondary', 'records'));
  };

  const showList = () => {
    listBox.removeAttribute('aria-busy');
    if (list.childElementCount === 0) {
      listBox.replaceChildren(h('p', { class: 'empty' }, 'No records match.'));
    } else if (list.parentElement !== listBox) {
      listBox.replaceChildren(list);
    }
  };

  /** One request at a time: "load more" and the follow poll share the cursor. */
  const serial = (fn: () => Promise<void>): Promise<void> => {
    inFlight = inFlight.then(fn, fn);
    return inFlight;
  };

  async function loadFirst(): Promise<void> {
    list.replaceChildren();
    shown = new Set();
    maxSeq = -1;
    lastAt = null;
    next = null;
    loading(listBox);
    more.replaceChildren();
    try {
      const r = await call<{ records: AuditRecord[]; next: string | null }>(query({}));
      if (ctx.signal.aborted) return;
      append(arr<AuditRecord>(r.records));
      next = typeof r.next === 'string' ? r.next : null;
      showList();
      renderMore();
    } catch (err) {
      if (!ctx.signal.aborted) fail(listBox, err, 'The audit log could not be loaded');
    }
  }

  async function loadNext(): Promise<void> {
    if (next === null) return;
    try {
      const r = await call<{ records: AuditRecord[]; next: string | null }>(query({ cursor: next }));
      if (ctx.signal.aborted) return;
      const before = list.childElementCount;
      const n = append(arr<AuditRecord>(r.records));
      next = typeof r.next === 'string' ? r.next : null;
      showList();
      renderMore();
      // The "Load more" button was replaced: focus the first new record (or the new button).
      const first = list.children[before]?.querySelector<HTMLElement>('summary');
      if (first) first.focus();
      else more.querySelector<HTMLElement>('button')?.focus();
      live.textContent = n === 0 ? 'No more records on that page.' : `${n} more records.`;
    } catch (err) {
      if (!(err instanceof Handled) && !ctx.signal.aborted) more.replaceChildren(errorBox(err));
    }
  }

  /** A follow tick: finish the current page trail, else ask again from the newest record's time. */
  async function poll(): Promise<void> {
    try {
      let n = 0;
      if (next !== null) {
        const r = await call<{ records: AuditRecord[]; next: string | null }>(query({ cursor: next }));
        if (ctx.signal.aborted || !following) return;
        n = append(arr<AuditRecord>(r.records));
        next = typeof r.next === 'string' ? r.next : null;
      } else {
        const fromIso = lastAt === null ? f.since : new Date(Math.max(lastAt, sinceMs())).toISOString();
        const r = await call<{ records: AuditRecord[]; next: string | null }>(query({ since: fromIso }));
        if (ctx.signal.aborted || !following) return;
        n = append(arr<AuditRecord>(r.records));
        next = typeof r.next === 'string' ? r.next : null;
      }
      showList();
      const t = new Date().toLocaleTimeString();
      live.textContent = n > 0 ? `${n} new record${n === 1 ? '' : 's'} (checked ${t}).` : `Following — checked ${t}.`;
    } catch (err) {
      if (err instanceof Handled || ctx.signal.aborted) return;
      live.replaceChildren(errorBox(err, 'Following paused'));
      setFollowing(false);
    }
  }

  const sinceMs = () => (f.since ? Date.parse(f.since) || 0 : 0);

  const tick = () => {
    timer = undefined;
    if (!following || ctx.signal.aborted) return;
    void serial(poll).then(() => {
      if (following && !ctx.signal.aborted) timer = setTimeout(tick, POLL_MS);
    });
  };

  function setFollowing(on: boolean): void {
    following = on;
    followBtn.setAttribute('aria-pressed', String(on));
    followBtn.textContent = on ? 'Following (stop)' : 'Follow new records';
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (on) {
      live.textContent = 'Following: new records appear at the end of the list every 2 seconds.';
      tick();
    } else if (!live.querySelector('.error')) {
      live.textContent = 'Stopped following.';
    }
    renderMore();
  }
  followBtn.addEventListener('click', () => setFollowing(!following));
  ctx.signal.addEventListener('abort', () => {
    following = false;
    if (timer !== undefined) clearTimeout(timer);
  });

  // ---- filters submit ---------------------------------------------------------------------
  const readForm = () => {
    for (const k of FILTERS) delete f[k];
    const set = (k: (typeof FILTERS)[number], v: string | undefined) => {
      if (v !== undefined && v.trim() !== '') f[k] = v.trim();
    };
    set('actor', actor.value);
    set('kind', kind.value);
    set('action', action.value);
    set('decision', decision.value);
    set('since', fromLocalInput(since.value));
    set('until', fromLocalInput(until.value));
    if (limit.value !== '100') set('limit', limit.value);
  };
  const rerun = () => {
    history.replaceState(null, '', `#/audit${qs(f)}`);
    void serial(loadFirst);
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    readForm();
    rerun();
  });
  clear.addEventListener('click', () => {
    form.reset();
    limit.value = '100';
    readForm();
    rerun();
    actor.focus();
  });

  // ---- verify -------------------------------------------------------------------------------
  verifyBtn.addEventListener('click', () => {
    if (verifyBtn.dataset['busy'] === 'true') return;
    void busy(verifyBtn, async () => {
      verifyOut.replaceChildren(h('p', { class: 'muted' }, 'Verifying the chain…'));
      try {
        const v = await call<Verify>('/audit/verify', {});
        if (ctx.signal.aborted) return;
        const range =
          num(v.firstSeq) !== null && num(v.lastSeq) !== null ? ` (records ${v.firstSeq}–${v.lastSeq})` : '';
        verifyOut.replaceChildren(
          v.ok
            ? h(
                'p',
                { class: 'status verify-ok' },
                h('strong', {}, 'Chain intact: '),
                `${num(v.records) ?? 0} records${range}, ${num(v.checkpoints) ?? 0} signed checkpoints.`,
              )
            : h(
                'p',
                { class: 'error verify-broken' },
                h('strong', {}, `Chain broken at record ${v.problem ? num(v.problem.seq) : '?'}: `),
                v.problem ? str(v.problem.what) : 'no detail given',
                ` — ${num(v.records) ?? 0} records checked${range}.`,
              ),
        );
      } catch (err) {
        verifyOut.replaceChildren(err instanceof Handled ? '' : errorBox(err, 'Verification failed'));
      }
    });
  });

  void serial(loadFirst);
};
