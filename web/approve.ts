// The approval page: what an agent asks to do for the signed-in person, exactly (method, path,
// body, and for a serving endpoint's configuration the settings that change), approved with a
// user-verified tap whose challenge the server derived from this request — or denied.
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { browserSupportsWebAuthn, startAuthentication } from '@simplewebauthn/browser';
import {
  ApiError,
  api,
  byId,
  clearMessages,
  formatDateTime,
  h,
  loginUrl,
  setBusy,
  showError,
  showStatus,
  UNSUPPORTED_MESSAGE,
} from './common.js';

interface Approval {
  id: string;
  status: 'pending' | 'approved' | 'denied' | 'used' | 'expired';
  agent: { id: string; name: string };
  method: string;
  path: string;
  query: string;
  action: string;
  resource: string;
  expiresAt: string;
  digest: string;
  contentType: string | null;
  body: { bytes: number; text: string; truncated: boolean };
  changes: { path: string; before?: unknown; after?: unknown }[] | null;
  changesNote: string | null;
}

const id = decodeURIComponent(location.pathname.split('/').pop() ?? '');
const base = `/.keygate/api/approvals/${encodeURIComponent(id)}`;
const approveButton = byId<HTMLButtonElement>('approve');
const denyButton = byId<HTMLButtonElement>('deny');

const shown = (v: unknown): string => (v === undefined ? '—' : JSON.stringify(v));

function render(a: Approval): void {
  byId('agent').textContent = a.agent.name;
  byId('method').textContent = a.method;
  byId('path').textContent = a.path + a.query;
  byId('action').textContent = a.action;
  byId('resource').textContent = a.resource;
  byId('expires').textContent = formatDateTime(Date.parse(a.expiresAt));
  byId('state').textContent = a.status;
  byId('digest').textContent = a.digest;
  byId('size').textContent =
    `${a.body.bytes} bytes${a.contentType ? ` of ${a.contentType}` : ''}${a.body.truncated ? ' (first 16 KiB shown)' : ''}`;
  byId('body').textContent = a.body.text === '' ? '(no body)' : a.body.text;
  if (a.changes !== null) {
    byId('changes').hidden = false;
    const rows = byId('changes-rows');
    rows.replaceChildren(
      ...(a.changes.length === 0
        ? [h('tr', {}, h('td', { colspan: '3' }, 'No setting changes.'))]
        : a.changes.map((c) =>
            h('tr', {}, h('td', {}, h('code', {}, c.path)), h('td', {}, shown(c.before)), h('td', {}, shown(c.after))),
          )),
    );
  }
  if (a.changesNote !== null) {
    byId('changes-note').hidden = false;
    byId('changes-note').textContent = a.changesNote;
  }
  const open = a.status === 'pending';
  approveButton.hidden = !open;
  denyButton.hidden = !open;
  if (!open) showStatus(`This request is ${a.status}.`);
}

async function load(): Promise<void> {
  try {
    render(await api<Approval>(base));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      location.assign(loginUrl(location.pathname));
      return;
    }
    showError(err);
    approveButton.disabled = true;
    denyButton.disabled = true;
  }
}

async function approve(): Promise<void> {
  clearMessages();
  setBusy(approveButton, true);
  try {
    const optionsJSON = await api<PublicKeyCredentialRequestOptionsJSON>(`${base}/options`, {});
    const response: AuthenticationResponseJSON = await startAuthentication({ optionsJSON });
    await api(`${base}/approve`, { response });
    await load();
    showStatus('Approved. The agent can now send this exact request, once.');
  } catch (err) {
    showError(err);
  } finally {
    setBusy(approveButton, false);
  }
}

async function deny(): Promise<void> {
  clearMessages();
  setBusy(denyButton, true);
  try {
    await api(`${base}/deny`, {});
    await load();
    showStatus('Denied. The agent’s request will not be sent.');
  } catch (err) {
    showError(err);
  } finally {
    setBusy(denyButton, false);
  }
}

if (!browserSupportsWebAuthn()) {
  showError(new Error(UNSUPPORTED_MESSAGE));
  approveButton.disabled = true;
}
approveButton.addEventListener('click', () => void approve());
denyButton.addEventListener('click', () => void deny());
void load();
