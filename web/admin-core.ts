/**
 * The admin console's plumbing: the admin API client (sign-in and fresh-login handling), and
 * small DOM builders shared by the views — tables, dialogs, one-time secrets, dates. Every piece
 * of API data reaches the page through textContent or an attribute, never as markup.
 */
import { ApiError, api, errorMessage, h, loginUrl, showStatus } from './common.js';

export const CONSOLE_PATH = '/.keygate/admin/';
const API = '/.keygate/api/admin/v1';

type Child = Node | string | null | undefined | false;

/** Thrown once the browser has been sent to the login page, or a fresh-login prompt is open: views drop it. */
export class Handled extends Error {
  constructor() {
    super('handled');
    this.name = 'Handled';
  }
}

/** The console view to come back to after a login: this page and its hash route. */
export function consoleUrl(): string {
  return CONSOLE_PATH + (location.hash.startsWith('#/') ? location.hash : '');
}

/**
 * Call the admin API (`path` is relative to /.keygate/api/admin/v1). A 401 without a session
 * sends the browser to the login page; one asking for a recent login opens the prompt that
 * does the same for a change. Both then throw `Handled`.
 */
export async function call<T>(path: string, body?: unknown, method?: string): Promise<T> {
  return withAuth(() => api<T>(`${API}${path}`, body, method));
}

export async function withAuth<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (err.code === 'FRESH_LOGIN_REQUIRED' || err.code === 'STEP_UP_REQUIRED') {
        void freshLoginPrompt();
      } else {
        location.assign(loginUrl(consoleUrl()));
      }
      throw new Handled();
    }
    throw err;
  }
}

/** Query string from an object, leaving out empty values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    u.set(k, String(v));
  }
  const s = u.toString();
  return s === '' ? '' : `?${s}`;
}

export const enc = encodeURIComponent;

// ---- defensive reading of API data --------------------------------------------------------

export function arr<T = unknown>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

export function str(v: unknown, fallback = ''): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : fallback;
}

export function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

// ---- messages ------------------------------------------------------------------------------

/** An in-view error: the API's message, its code and the request id (for a report). */
export function errorBox(err: unknown, what?: string): HTMLElement {
  const box = h('div', { class: 'error view-error', role: 'alert' });
  if (what) box.append(h('strong', {}, `${what}: `));
  box.append(errorMessage(err));
  if (err instanceof ApiError && err.status > 0) {
    const ref = err.requestId ? ` · request ${err.requestId}` : '';
    box.append(h('span', { class: 'request-id' }, `HTTP ${err.status} ${err.code}${ref}`));
  }
  return box;
}

/** Replace a container's contents with an error (unless the error was already handled). */
export function fail(container: HTMLElement, err: unknown, what?: string): void {
  container.removeAttribute('aria-busy');
  if (err instanceof Handled) return;
  container.replaceChildren(errorBox(err, what));
}

export function loading(container: HTMLElement, text = 'Loading…'): void {
  container.setAttribute('aria-busy', 'true');
  container.replaceChildren(h('p', { class: 'muted loading' }, text));
}

export function done(container: HTMLElement, ...children: Child[]): void {
  container.removeAttribute('aria-busy');
  container.replaceChildren();
  for (const c of children) if (c !== null && c !== undefined && c !== false) container.append(c);
}

/**
 * Fill a container from the API: "Loading…" the first time, then what `draw` makes of the
 * answer, or the error (`what` could not be loaded). Nothing is written once the view has gone.
 */
export async function fill(
  container: HTMLElement,
  signal: AbortSignal,
  what: string,
  draw: () => Promise<Child[]>,
): Promise<void> {
  if (container.childElementCount === 0) loading(container);
  try {
    const children = await draw();
    if (!signal.aborted) done(container, ...children);
  } catch (err) {
    if (!signal.aborted) fail(container, err, `${what} could not be loaded`);
  }
}

/** A short-lived note in a view's own polite live region. */
export function say(region: HTMLElement, text: string, kind: 'ok' | 'error' = 'ok'): void {
  region.className = kind === 'ok' ? 'status' : 'error';
  region.textContent = text;
}

// ---- dates ---------------------------------------------------------------------------------

const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function relative(ms: number, now = Date.now()): string {
  const d = ms - now;
  const a = Math.abs(d);
  if (a < 45_000) return d <= 0 ? 'just now' : 'in a moment';
  if (a < 3_600_000) return rtf.format(Math.round(d / 60_000), 'minute');
  if (a < 86_400_000) return rtf.format(Math.round(d / 3_600_000), 'hour');
  return rtf.format(Math.round(d / 86_400_000), 'day');
}

/** A <time> showing a date and time, with the exact moment in its title. */
export function when(ms: unknown, style: 'date' | 'relative' = 'date'): HTMLElement | string {
  const n = num(ms);
  if (n === null) return '—';
  const d = new Date(n);
  return h(
    'time',
    { datetime: d.toISOString(), title: fullFmt.format(d) },
    style === 'relative' ? relative(n) : dateTimeFmt.format(d),
  );
}

export function fullTime(ms: number): string {
  return fullFmt.format(new Date(ms));
}

// ---- building blocks -----------------------------------------------------------------------

/** Name the view: its heading, and the document's title. */
export function titled(h1: HTMLElement, text: string): void {
  h1.textContent = text;
  document.title = `${text} · Keygate admin`;
}

/** Label → value pairs as a `.facts` list. */
export function facts(rows: [string, Child][]): HTMLElement {
  return h('dl', { class: 'facts' }, ...rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

export function section(title: string, ...children: Child[]): HTMLElement {
  const id = uid('sec');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id, tabindex: '-1' }, title), ...children);
}

let seq = 0;
export function uid(prefix: string): string {
  return `${prefix}-${++seq}`;
}

export function badge(text: string, kind = ''): HTMLElement {
  return h('span', { class: kind ? `badge badge-${kind}` : 'badge' }, text);
}

export function button(
  label: string,
  onClick: (b: HTMLButtonElement) => void | Promise<void>,
  cls = 'btn btn-secondary btn-small',
  hiddenContext?: string,
): HTMLButtonElement {
  const b = h(
    'button',
    { type: 'button', class: cls },
    label,
    hiddenContext ? h('span', { class: 'visually-hidden' }, ` ${hiddenContext}`) : null,
  );
  b.addEventListener('click', () => {
    if (b.dataset['busy'] === 'true') return;
    void onClick(b);
  });
  return b;
}

/** Mark a button busy (keeping focus on it) while `fn` runs. */
export async function busy<T>(b: HTMLButtonElement, fn: () => Promise<T>): Promise<T> {
  b.dataset['busy'] = 'true';
  b.setAttribute('aria-disabled', 'true');
  try {
    return await fn();
  } finally {
    delete b.dataset['busy'];
    b.removeAttribute('aria-disabled');
  }
}

export interface Column<T> {
  label: string;
  cell: (row: T) => Child | Child[];
  cls?: string;
}

/** "Last used" and "Status" (live or revoked): the columns of a credential that can be revoked. */
export function usageColumns<T extends { lastUsedAt: unknown; revokedAt: unknown }>(): Column<T>[] {
  return [
    { label: 'Last used', cell: (r) => (r.lastUsedAt === null ? 'Never' : when(r.lastUsedAt, 'relative')) },
    { label: 'Status', cell: (r) => (r.revokedAt === null ? badge('Live', 'ok') : badge('Revoked', 'danger')) },
  ];
}

/** A table in a horizontally scrollable, keyboard-focusable region (phones scroll it sideways). */
export function table<T>(caption: string, columns: Column<T>[], rows: T[], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  const captionId = uid('cap');
  const t = h(
    'table',
    { class: 'data' },
    h('caption', { id: captionId, class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)))),
  );
  const body = h('tbody');
  for (const r of rows) {
    const tr = h('tr');
    for (const c of columns) {
      const v = c.cell(r);
      const td = h('td', { class: c.cls });
      for (const x of Array.isArray(v) ? v : [v]) if (x !== null && x !== undefined && x !== false) td.append(x);
      tr.append(td);
    }
    body.append(tr);
  }
  t.append(body);
  return h('div', { class: 'table-wrap', role: 'region', 'aria-labelledby': captionId, tabindex: '0' }, t);
}

type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

/** A label + input pair in a `.field`. */
export function field(label: string, input: Control, hint?: string): { wrap: HTMLElement; input: Control } {
  const id = input.id || uid('f');
  input.id = id;
  const kids: Child[] = [h('label', { for: id }, label), input];
  if (hint) {
    const hid = `${id}-hint`;
    input.setAttribute('aria-describedby', hid);
    kids.push(h('span', { class: 'hint', id: hid }, hint));
  }
  return { wrap: h('div', { class: 'field' }, ...kids), input };
}

export function roleBadges(roles: unknown): HTMLElement {
  const list = arr<string>(roles).map((r) => str(r));
  return list.length === 0
    ? h('span', { class: 'muted' }, 'none')
    : h('span', { class: 'badges' }, ...list.map((r) => badge(r, 'role')));
}

/** The roles there are (GET /roles), each a checkbox; `value()` is the names ticked. */
export function rolePicker(): { wrap: HTMLElement; value: () => string[] } {
  const wrap = h('fieldset', { class: 'choice role-pick' }, h('legend', {}, 'Roles'));
  const note = h('p', { class: 'muted' }, 'Loading roles…');
  wrap.append(note);
  call<{ roles: { name: string; description?: string }[] }>('/roles').then(
    (r) => {
      const names = arr<{ name: string }>(r.roles).map((x) => str(x.name));
      note.replaceWith(
        ...names.map((n) =>
          h('label', { class: 'radio' }, h('input', { type: 'checkbox', name: 'roles', value: n }), ` ${n}`),
        ),
      );
    },
    (err: unknown) => {
      if (!(err instanceof Handled)) note.replaceWith(errorBox(err, 'Roles could not be loaded'));
    },
  );
  const value = () => [...wrap.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value);
  return { wrap, value };
}

/** Mark a field as wrong: say why and put focus on it. */
export function flag(input: Control, msg: HTMLElement, why: string): void {
  input.setAttribute('aria-invalid', 'true');
  say(msg, why, 'error');
  input.focus();
}

/** True when the field has a value; otherwise it is flagged with `why`. */
export function filled(input: Control, msg: HTMLElement, why: string): boolean {
  if (input.value.trim() === '') {
    flag(input, msg, why);
    return false;
  }
  input.removeAttribute('aria-invalid');
  return true;
}

/** A JWK or a JWKS pasted into a field, as a JWKS; null (the field flagged) when it is neither. */
export function jwksIn(input: HTMLTextAreaElement, msg: HTMLElement): { keys: unknown[] } | null {
  let v: unknown;
  try {
    v = JSON.parse(input.value);
  } catch {
    v = null;
  }
  const o = v !== null && typeof v === 'object' ? (v as { keys?: unknown; kty?: unknown }) : {};
  if (Array.isArray(o.keys)) return { keys: o.keys };
  if (typeof o.kty === 'string') return { keys: [o] };
  flag(input, msg, 'Paste the keys as JSON: one JWK ({"kty": …}) or a JWKS ({"keys": […]}).');
  return null;
}

/**
 * Make a change from a button, busy while it runs. A refusal is said in `msg` in the API's words
 * (a 400 names the field it refused — "issuer: Invalid URL" —, and that field among `fields` is
 * marked and focused); a fresh-login prompt has opened already. When the button went away with
 * the change, focus goes to its section's heading.
 */
export async function attempt(
  b: HTMLButtonElement,
  msg: HTMLElement,
  fn: () => Promise<void>,
  fields: Record<string, Control> = {},
): Promise<void> {
  const home = b.closest('section')?.querySelector<HTMLElement>('h2');
  await busy(b, async () => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof Handled) return;
      const text = err instanceof Error ? err.message : 'Something went wrong.';
      const named =
        err instanceof ApiError && err.status === 400 ? /^(?:[^:]+: )?(\w+)[.:]/.exec(text)?.[1] : undefined;
      const input = named === undefined ? undefined : fields[named];
      if (input) flag(input, msg, text);
      else say(msg, text, 'error');
    }
  });
  if (!b.isConnected) (home?.isConnected ? home : document.querySelector<HTMLElement>('#view h1'))?.focus();
}

/** A button for a change that needs a yes first (a destructive dialog starts on Cancel), then runs as an `attempt`. */
export function confirmButton(
  label: string,
  ask: { title: string; message: string; confirm: string },
  msg: HTMLElement,
  fn: () => Promise<void>,
  cls = 'btn btn-danger-quiet',
  hiddenContext?: string,
): HTMLButtonElement {
  return button(
    label,
    async (b) => {
      if (await confirmAction(ask.title, ask.message, ask.confirm)) await attempt(b, msg, fn);
    },
    cls,
    hiddenContext,
  );
}

/** A `.form-grid` form: its fields, then its submit button. */
export function gridForm(
  id: string,
  submit: { label: string; id: string; secondary?: boolean },
  ...fields: Child[]
): { form: HTMLFormElement; submit: HTMLButtonElement } {
  const cls = submit.secondary ? 'btn btn-secondary' : 'btn btn-primary';
  const btn = h('button', { type: 'submit', class: cls, id: submit.id }, submit.label);
  const form = h(
    'form',
    { class: 'form-grid', id, novalidate: true },
    ...fields,
    h('div', { class: 'form-actions' }, btn),
  );
  return { form, submit: btn };
}

/** A form whose submission (button or Enter) runs `fn` as an `attempt`. */
export function onSubmit(
  form: HTMLFormElement,
  submit: HTMLButtonElement,
  msg: HTMLElement,
  fn: () => Promise<void>,
  fields: Record<string, Control> = {},
): void {
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (submit.dataset['busy'] === 'true') return;
    for (const f of Object.values(fields)) f.removeAttribute('aria-invalid');
    void attempt(submit, msg, fn, fields);
  });
}

/** Go to another view (the thing shown here is gone) and say why there. */
export function leave(hash: string, note: string): void {
  // After the router's own listener, which clears the messages and draws the view.
  window.addEventListener('hashchange', () => showStatus(note), { once: true });
  location.hash = hash;
}

/** Where a binding or a trust comes from. */
export function sourceLabel(source: unknown): string {
  return source === 'store' ? 'this console' : 'keygate.yaml';
}

// ---- dialogs -------------------------------------------------------------------------------

/**
 * A modal dialog (native <dialog>: focus is trapped, Escape cancels). Resolves true when the
 * confirm button closed it; focus goes back to what had it before.
 */
export function dialog(o: {
  title: string;
  body: Child[];
  confirm?: { label: string; danger?: boolean } | HTMLElement;
  cancelLabel?: string;
  id?: string;
}): Promise<boolean> {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const titleId = uid('dlg');
  const cancel = h(
    'button',
    { type: 'submit', value: 'cancel', class: 'btn btn-secondary' },
    o.cancelLabel ?? 'Cancel',
  );
  let confirmEl: HTMLElement | null = null;
  if (o.confirm instanceof HTMLElement) confirmEl = o.confirm;
  else if (o.confirm)
    confirmEl = h(
      'button',
      { type: 'submit', value: 'confirm', class: o.confirm.danger ? 'btn btn-danger' : 'btn btn-primary' },
      o.confirm.label,
    );
  const d = h(
    'dialog',
    { class: 'modal', 'aria-labelledby': titleId, id: o.id },
    h(
      'form',
      { method: 'dialog', class: 'modal-form' },
      h('h2', { id: titleId }, o.title),
      ...o.body,
      h('div', { class: 'modal-actions' }, confirmEl, cancel),
    ),
  );
  document.body.append(d);
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      const ok = d.returnValue === 'confirm';
      d.remove();
      if (opener?.isConnected) opener.focus();
      else document.getElementById('main')?.focus();
      resolve(ok);
    });
    d.showModal();
    // Destructive choices start on Cancel; a plain confirmation on its button.
    (o.confirm && !(o.confirm instanceof HTMLElement) && !o.confirm.danger ? confirmEl : cancel)?.focus();
  });
}

export function confirmAction(title: string, message: string, label: string, danger = true): Promise<boolean> {
  return dialog({ title, body: [h('p', {}, message)], confirm: { label, danger } });
}

let promptOpen = false;

/**
 * A change was refused for want of a recent login: say so plainly and offer the way through —
 * the login page, which brings the admin back to this same view.
 */
export async function freshLoginPrompt(): Promise<void> {
  if (promptOpen) return;
  promptOpen = true;
  const go = h(
    'a',
    { class: 'btn btn-primary', href: loginUrl(consoleUrl()), id: 'fresh-login-go' },
    'Confirm with your security key',
  );
  try {
    await dialog({
      id: 'fresh-login',
      title: 'Confirm with your security key',
      body: [
        h(
          'p',
          {},
          'Changes need a recent sign-in. Sign in again with your security key or passkey; you will come back to this page, and can then repeat the change.',
        ),
      ],
      confirm: go,
      cancelLabel: 'Not now',
    });
  } finally {
    promptOpen = false;
  }
}

export interface Once {
  title: string;
  warning: string;
  fields: { label: string; value: string; secret?: boolean }[];
  extra?: Child[];
}

/**
 * A value shown once (an enrollment link, a client secret): read-only, with a copy button. It
 * lives only in this element — never in storage — and goes when the panel is dismissed.
 */
function oncePanel(o: Once): HTMLElement {
  const note = h('p', { class: 'copy-note', role: 'status', 'aria-live': 'polite' });
  const titleId = uid('once');
  const panel = h(
    'div',
    { class: 'once', role: 'group', 'aria-labelledby': titleId },
    h('h3', { id: titleId, tabindex: '-1' }, o.title),
    h('p', { class: 'once-warning' }, o.warning),
  );
  for (const f of o.fields) {
    const input = h('input', {
      type: 'text',
      readonly: true,
      autocomplete: 'off',
      spellcheck: 'false',
      class: f.secret ? 'once-value secret-value' : 'once-value',
    });
    input.value = f.value;
    const { wrap } = field(f.label, input);
    const copy = button(
      'Copy',
      async () => {
        try {
          await navigator.clipboard.writeText(input.value);
          note.textContent = `${f.label} copied to the clipboard.`;
        } catch {
          input.focus();
          input.select();
          note.textContent = `${f.label} is selected: press Ctrl+C (⌘C) to copy it.`;
        }
      },
      'btn btn-secondary btn-small',
      f.label,
    );
    wrap.classList.add('once-field');
    wrap.append(h('div', { class: 'once-row' }, input, copy));
    panel.append(wrap);
  }
  if (o.extra) for (const x of o.extra) if (x) panel.append(x);
  const dismiss = button(
    'Done — I have saved it',
    () => {
      const heading = panel.closest('section')?.querySelector<HTMLElement>('h2') ?? document.querySelector('h1');
      panel.remove();
      heading?.focus();
    },
    'btn btn-primary btn-small',
  );
  panel.append(note, h('div', { class: 'once-actions' }, dismiss));
  return panel;
}

/** Show a value once in `out`, in place of what was there, with focus on its title (so it is read out). */
export function showOnce(out: HTMLElement, o: Once): void {
  const panel = oncePanel(o);
  out.replaceChildren(panel);
  panel.querySelector<HTMLElement>('h3')?.focus();
}

/** The warning over a secret Keygate keeps only the hash of (`what` it is, `where` it goes). */
export function hashOnly(what: string, where: string): string {
  return `This ${what} is shown only once: Keygate keeps only its hash. Copy it now into ${where} — it will not be shown again.`;
}
