/**
 * Shared helpers for the Keygate browser pages: the JSON API client, plain-language messages
 * for WebAuthn failures, the status/error regions, and `return_to` handling.
 */

export const LOGIN_PATH = '/.keygate/login';
export const DEVICES_PATH = '/.keygate/devices';

/** An error whose `message` is written for the person in front of the page. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | undefined;

  constructor(message: string, status: number, code: string, requestId?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

interface WireError {
  error_code?: unknown;
  message?: unknown;
  request_id?: unknown;
}

/**
 * Call a Keygate API route. With a body the request is a POST (unless `method` says otherwise)
 * carrying JSON; without one it is a GET. A 204 resolves to `undefined`. Error responses
 * (`{"error_code","message","request_id"}`) become an `ApiError` carrying the server's message.
 */
export async function api<T = unknown>(path: string, body?: unknown, method?: string): Promise<T> {
  const init: RequestInit = {
    method: method ?? (body === undefined ? 'GET' : 'POST'),
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers = { Accept: 'application/json', 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }

  let res: Response;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError('Keygate could not be reached. Check your connection and try again.', 0, 'NETWORK_ERROR');
  }

  if (res.status === 204) return undefined as T;

  let data: unknown;
  try {
    data = await res.json();
  } catch {
    data = undefined;
  }

  if (!res.ok) {
    const wire = (data && typeof data === 'object' ? data : {}) as WireError;
    const message =
      typeof wire.message === 'string' && wire.message.trim() !== ''
        ? wire.message
        : `Something went wrong (HTTP ${res.status}). Try again.`;
    const code = typeof wire.error_code === 'string' ? wire.error_code : `HTTP_${res.status}`;
    const requestId = typeof wire.request_id === 'string' ? wire.request_id : undefined;
    throw new ApiError(message, res.status, code, requestId);
  }
  if (data === undefined) {
    throw new ApiError('Keygate sent an unexpected response. Try again.', res.status, 'BAD_RESPONSE');
  }
  return data as T;
}

/** Plain-language messages for the errors `navigator.credentials.create()/get()` can raise. */
const WEBAUTHN_MESSAGES: Record<string, string> = {
  NotAllowedError: 'The request was cancelled or timed out, or no matching security key or passkey was found.',
  InvalidStateError: 'This authenticator is already registered.',
  AbortError: 'The request was cancelled.',
  NotSupportedError: 'This browser does not support security keys or passkeys.',
  SecurityError:
    'This page is not allowed to use security keys or passkeys at this address. Open Keygate at its usual address and try again.',
  ConstraintError:
    'This security key or passkey cannot meet the requirements (for example a PIN or fingerprint check). Try another one.',
  UnknownError: 'The security key or passkey reported a problem. Try again, or use another one.',
  TypeError: 'The browser could not start the request. Reload the page and try again.',
};

export const UNSUPPORTED_MESSAGE = WEBAUTHN_MESSAGES['NotSupportedError']!;

/** True for the error a ceremony rejects with when it was aborted on purpose (a newer request replaced it). */
export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** The message to show for any failure: API errors carry theirs, WebAuthn errors are translated. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) {
    const mapped = WEBAUTHN_MESSAGES[err.name];
    if (mapped) return mapped;
    if (/not supported/i.test(err.message)) return UNSUPPORTED_MESSAGE;
  }
  return 'Something went wrong. Try again.';
}

/**
 * A same-origin path to return to after login, or undefined. The server sanitizes it again;
 * this only keeps obvious junk (absolute or protocol-relative URLs) out of the request.
 */
export function safePath(raw: string | null | undefined): string | undefined {
  if (!raw || raw.length > 2048) return undefined;
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return undefined;
  return raw;
}

export function queryParam(name: string): string | null {
  return new URLSearchParams(location.search).get(name);
}

export function loginUrl(returnTo: string): string {
  return `${LOGIN_PATH}?return_to=${encodeURIComponent(returnTo).replace(/%2F/gi, '/')}`;
}

// ---- DOM ---------------------------------------------------------------------------------

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

type Child = Node | string | null | undefined | false;

/** Create an element; attributes are set with setAttribute, children appended (strings as text). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c);
  }
  return el;
}

/** Put a short confirmation or progress note in the polite `#status` region (and clear `#error`). */
export function showStatus(text: string): void {
  byId('error').replaceChildren();
  const el = byId('status');
  el.textContent = text;
  reveal(el);
}

/** Show an error in the `#error` alert region. Extra nodes (for example a link) follow the text. */
export function showError(err: unknown, ...extra: Child[]): void {
  byId('status').replaceChildren();
  const text = typeof err === 'string' ? err : errorMessage(err);
  const nodes: Node[] = [h('span', {}, text)];
  for (const c of extra) {
    if (c === null || c === undefined || c === false) continue;
    nodes.push(document.createTextNode(' '), typeof c === 'string' ? document.createTextNode(c) : c);
  }
  if (err instanceof ApiError && err.requestId && err.status >= 500) {
    nodes.push(h('span', { class: 'request-id' }, `Reference: ${err.requestId}`));
  }
  const el = byId('error');
  el.replaceChildren(...nodes);
  reveal(el);
}

/** Scroll a message into view when it is off screen (long device lists). */
function reveal(el: HTMLElement): void {
  const r = el.getBoundingClientRect();
  if (r.top < 0 || r.bottom > window.innerHeight) el.scrollIntoView({ block: 'nearest' });
}

export function clearMessages(): void {
  byId('status').replaceChildren();
  byId('error').replaceChildren();
}

/**
 * Mark a button busy without `disabled`, so keyboard focus stays on it while a ceremony runs.
 * Handlers check `isBusy()` and ignore repeated activations.
 */
export function setBusy(button: HTMLButtonElement, busy: boolean): void {
  if (busy) {
    button.setAttribute('aria-disabled', 'true');
    button.dataset['busy'] = 'true';
  } else {
    button.removeAttribute('aria-disabled');
    delete button.dataset['busy'];
  }
}

export function isBusy(button: HTMLButtonElement): boolean {
  return button.dataset['busy'] === 'true';
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatDate(ms: number): string {
  return dateFmt.format(new Date(ms));
}

export function formatDateTime(ms: number): string {
  return dateTimeFmt.format(new Date(ms));
}
