// The step-up page: a fresh, user-verified tap of one of the signed-in person's keys (RFC 9470).
// Either it returns to the page that asked (return_to), or — for a submitted change — it shows
// what is being approved and sends it once the key is tapped (pending).
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { browserSupportsWebAuthn, startAuthentication } from '@simplewebauthn/browser';
import {
  ApiError,
  api,
  byId,
  clearMessages,
  loginUrl,
  queryParam,
  safePath,
  setBusy,
  showError,
  showStatus,
  UNSUPPORTED_MESSAGE,
} from './common.js';

interface Pending {
  method: string;
  target: string;
  contentType: string | null;
  body: { bytes: number; text: string; truncated: boolean };
}

const button = byId<HTMLButtonElement>('step-up');
const pendingId = queryParam('pending');
const returnTo = safePath(queryParam('return_to')) ?? '/';

async function showPending(id: string): Promise<void> {
  try {
    const p = await api<Pending>(`/.keygate/api/step-up/pending/${encodeURIComponent(id)}`, undefined, 'GET');
    byId('continue').hidden = true;
    byId('approval').hidden = false;
    byId('approve-method').textContent = p.method;
    byId('approve-target').textContent = p.target;
    byId('approve-size').textContent = `${p.body.bytes} bytes${p.contentType ? ` of ${p.contentType}` : ''}${p.body.truncated ? ' (first 4 KiB shown)' : ''}`;
    byId('approve-body').textContent = p.body.text === '' ? '(no body)' : p.body.text;
    button.textContent = 'Tap your key to approve and send';
  } catch (err) {
    showError(err);
    button.disabled = true;
  }
}

/** Send the approved request; its answer is shown here. */
async function replay(id: string): Promise<void> {
  const res = await fetch(`/.keygate/api/step-up/pending/${encodeURIComponent(id)}/replay`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  const text = await res.text();
  byId('result').hidden = false;
  byId('result-status').textContent = `${res.status} ${res.statusText}`;
  let shown = text;
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // not JSON: show as text
  }
  byId('result-body').textContent = shown;
  showStatus(res.ok ? 'Approved and sent.' : 'Sent, but the request was not accepted.');
}

async function stepUp(): Promise<void> {
  clearMessages();
  setBusy(button, true);
  try {
    const optionsJSON = await api<PublicKeyCredentialRequestOptionsJSON>('/.keygate/api/webauthn/step-up/options', {});
    const response: AuthenticationResponseJSON = await startAuthentication({ optionsJSON });
    const result = await api<{ returnTo: string }>('/.keygate/api/webauthn/step-up/verify', { response, returnTo });
    if (pendingId !== null) {
      await replay(pendingId);
      button.hidden = true;
      return;
    }
    showStatus('Confirmed. Continuing…');
    location.assign(safePath(result.returnTo) ?? '/');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && err.code === 'UNAUTHENTICATED') {
      location.assign(loginUrl(returnTo));
      return;
    }
    showError(err);
    setBusy(button, false);
  }
}

if (!browserSupportsWebAuthn()) {
  showError(new Error(UNSUPPORTED_MESSAGE));
  button.disabled = true;
} else {
  byId('target').textContent = returnTo;
  if (pendingId !== null) void showPending(pendingId);
  button.addEventListener('click', () => void stepUp());
}
