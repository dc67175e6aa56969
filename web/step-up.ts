// The step-up page: a fresh, user-verified tap of one of the signed-in person's keys (RFC 9470),
// then back to the page that asked for it.
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

const button = byId<HTMLButtonElement>('step-up');
const returnTo = safePath(queryParam('return_to')) ?? '/';
byId('target').textContent = returnTo;

async function stepUp(): Promise<void> {
  clearMessages();
  setBusy(button, true);
  try {
    const optionsJSON = await api<PublicKeyCredentialRequestOptionsJSON>('/.keygate/api/webauthn/step-up/options', {});
    const response: AuthenticationResponseJSON = await startAuthentication({ optionsJSON });
    const result = await api<{ returnTo: string }>('/.keygate/api/webauthn/step-up/verify', { response, returnTo });
    showStatus('Confirmed. Continuing…');
    location.assign(result.returnTo);
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
  button.addEventListener('click', () => void stepUp());
}
