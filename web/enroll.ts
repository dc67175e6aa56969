import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { browserSupportsWebAuthn, startRegistration } from '@simplewebauthn/browser';
import {
  ApiError,
  api,
  byId,
  clearMessages,
  DEVICES_PATH,
  h,
  isBusy,
  queryParam,
  safePath,
  setBusy,
  showError,
  showStatus,
  UNSUPPORTED_MESSAGE,
} from './common.js';

interface EnrollmentInfo {
  email: string;
  displayName: string;
  kind: 'enroll' | 'recovery';
}

interface VerifyResult {
  credential: { id: string; name: string; authenticator: string };
  returnTo: string;
}

const title = byId('title');
const lead = byId('lead');
const form = byId<HTMLFormElement>('enroll-form');
const nameInput = byId<HTMLInputElement>('key-name');
const registerButton = byId<HTMLButtonElement>('register');
const token = queryParam('token');

/** The link cannot be used: say so, and offer no button. */
function deadLink(message: string): void {
  form.hidden = true;
  lead.textContent = 'This link can’t be used.';
  showError(message);
}

async function register(info: EnrollmentInfo): Promise<void> {
  if (isBusy(registerButton) || token === null) return;
  const name = nameInput.value.trim();
  if (name === '') {
    nameInput.setAttribute('aria-invalid', 'true');
    showError('Give this key a name.');
    nameInput.focus();
    return;
  }
  nameInput.removeAttribute('aria-invalid');
  clearMessages();
  setBusy(registerButton, true);
  try {
    showStatus('Preparing registration…');
    const optionsJSON = await api<PublicKeyCredentialCreationOptionsJSON>(
      '/.keygate/api/webauthn/registration/options',
      { enrollmentToken: token },
    );
    showStatus('Follow your browser’s prompt: insert and touch your security key, or confirm with your passkey.');
    const response = await startRegistration({ optionsJSON });
    showStatus('Saving your key…');
    const result = await api<VerifyResult>('/.keygate/api/webauthn/registration/verify', {
      response,
      name,
      enrollmentToken: token,
    });
    form.hidden = true;
    byId('help').hidden = true;
    const next = safePath(result.returnTo) ?? DEVICES_PATH;
    const link = byId<HTMLAnchorElement>('continue');
    link.href = next;
    byId('done-text').replaceChildren(
      `“${result.credential.name || name}” now signs you in as `,
      h('strong', {}, info.email),
      '. Keep it somewhere safe, and consider adding a backup key.',
    );
    byId('done').hidden = false;
    lead.textContent =
      info.kind === 'recovery' ? 'Your account is recovered and you are signed in.' : 'You are signed in.';
    showStatus('Key registered.');
    link.focus();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'ENROLLMENT_TOKEN_INVALID') {
      deadLink(err.message);
    } else {
      showError(err);
    }
  } finally {
    setBusy(registerButton, false);
  }
}

async function init(): Promise<void> {
  if (!token) {
    deadLink(
      'This enrollment link is incomplete. Open the full link you were sent, or ask an administrator for a new one.',
    );
    return;
  }
  let info: EnrollmentInfo;
  try {
    info = await api<EnrollmentInfo>(`/.keygate/api/enrollment?token=${encodeURIComponent(token)}`);
  } catch (err) {
    deadLink(err instanceof ApiError ? err.message : 'This enrollment link could not be checked. Reload to try again.');
    return;
  }

  if (info.kind === 'recovery') {
    title.textContent = 'Register a new key to recover your account';
    document.title = 'Recover your account · Keygate';
    lead.replaceChildren(
      'Register a new security key or passkey for ',
      h('strong', { class: 'email' }, info.email),
      '. You will be signed in once it is saved.',
    );
  } else {
    title.replaceChildren('Set up your security key, ', h('span', { class: 'email' }, info.email));
    lead.replaceChildren(
      `Welcome${info.displayName ? `, ${info.displayName}` : ''}. Register a security key or passkey — it replaces your password for Keygate.`,
    );
  }

  if (!browserSupportsWebAuthn()) {
    form.hidden = true;
    showError(UNSUPPORTED_MESSAGE + ' Open this link in a current version of Chrome, Edge, Firefox or Safari.');
    return;
  }

  form.hidden = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void register(info);
  });
  nameInput.addEventListener('input', () => nameInput.removeAttribute('aria-invalid'));
}

void init();
