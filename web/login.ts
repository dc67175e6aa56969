import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { browserSupportsWebAuthn, startAuthentication, WebAuthnAbortService } from '@simplewebauthn/browser';
import {
  ApiError,
  api,
  byId,
  clearMessages,
  isAbort,
  isBusy,
  queryParam,
  safePath,
  setBusy,
  showError,
  showStatus,
  UNSUPPORTED_MESSAGE,
} from './common.js';

interface IdpInfo {
  providers: { name: string; displayName: string }[];
  /** A provider login this browser is finishing with a key (require-local-key). */
  pending: { email: string; provider: string } | null;
}

interface VerifyResult {
  user: { id: string; email: string; displayName: string };
  returnTo: string;
}

const signinButton = byId<HTMLButtonElement>('signin');
const emailButton = byId<HTMLButtonElement>('signin-email');
const emailForm = byId<HTMLFormElement>('email-form');
const emailInput = byId<HTMLInputElement>('email');
const returnTo = safePath(queryParam('return_to'));
/** After a provider login: the key tap must be by the person it named (the server holds who). */
let afterIdp = false;

/** Bumped by every explicit attempt, so a stale conditional (autofill) request never acts. */
let generation = 0;
let conditionalAvailable = false;
/** True while an autofill (conditional) request is pending. */
let conditionalRunning = false;
const details = byId<HTMLDetailsElement>('email-option');

function showLoginError(err: unknown): void {
  if (err instanceof ApiError && err.code === 'LOGIN_FAILED') {
    showError(err, 'Try another key, or ask an administrator for a recovery link if yours is lost.');
  } else {
    showError(err);
  }
}

async function verify(response: AuthenticationResponseJSON): Promise<void> {
  showStatus('Checking your key…');
  const body: { response: AuthenticationResponseJSON; returnTo?: string; idp?: true } = { response };
  if (returnTo !== undefined) body.returnTo = returnTo;
  if (afterIdp) body.idp = true;
  const result = await api<VerifyResult>('/.keygate/api/webauthn/authentication/verify', body);
  showStatus('Signed in. Redirecting…');
  location.assign(safePath(result.returnTo) ?? '/');
}

/** Explicit sign-in: discoverable (no email) or username-first (with email). */
async function signIn(button: HTMLButtonElement, email?: string): Promise<void> {
  if (isBusy(signinButton) || isBusy(emailButton)) return;
  const mine = ++generation;
  // A pending autofill request would block this one: cancel it first.
  WebAuthnAbortService.cancelCeremony();
  clearMessages();
  setBusy(button, true);
  try {
    showStatus('Preparing sign-in…');
    const optionsJSON = await api<PublicKeyCredentialRequestOptionsJSON>(
      '/.keygate/api/webauthn/authentication/options',
      afterIdp ? { idp: true } : email === undefined ? {} : { email },
    );
    showStatus('Follow your browser’s prompt: touch your security key or confirm with your passkey.');
    const response = await startAuthentication({ optionsJSON });
    await verify(response);
  } catch (err) {
    if (mine === generation) showLoginError(err);
    setBusy(button, false);
    // Offer autofill again after a failed or cancelled attempt.
    if (mine === generation && details.open) void startConditional();
  }
}

/**
 * Conditional UI: passkeys offered in the email field's autofill. It runs only while the
 * "Use my email" field is shown (no challenge is spent on every page view), and stays silent
 * unless it succeeds or the server refuses the login.
 */
async function startConditional(): Promise<void> {
  if (!conditionalAvailable || conditionalRunning || isBusy(signinButton) || isBusy(emailButton)) return;
  const mine = generation;
  let response: AuthenticationResponseJSON;
  conditionalRunning = true;
  try {
    const optionsJSON = await api<PublicKeyCredentialRequestOptionsJSON>(
      '/.keygate/api/webauthn/authentication/options',
      {},
    );
    if (mine !== generation) return;
    response = await startAuthentication({ optionsJSON, useBrowserAutofill: true });
  } catch {
    // Aborted by an explicit attempt, timed out, or unavailable: the buttons still work.
    return;
  } finally {
    conditionalRunning = false;
  }
  if (mine !== generation) return;
  generation++;
  setBusy(signinButton, true);
  setBusy(emailButton, true);
  try {
    await verify(response);
  } catch (err) {
    if (!isAbort(err)) showLoginError(err);
    setBusy(signinButton, false);
    setBusy(emailButton, false);
    if (details.open) void startConditional();
  }
}

/**
 * Identity providers: a "Continue with …" link for each; and, back from one in
 * require-local-key mode, the page asks for a key of the person it named.
 */
async function initProviders(): Promise<void> {
  let info: IdpInfo;
  try {
    info = await api<IdpInfo>('/.keygate/api/idp');
  } catch {
    return;
  }
  if (queryParam('idp') !== null && info.pending !== null) {
    afterIdp = true;
    byId('title').textContent = 'Confirm it’s you';
    byId('lead').textContent =
      `Signed in through ${info.pending.provider} as ${info.pending.email}. Now use your passkey or security key.`;
    byId('signin').querySelector('span')!.textContent = 'Use my passkey or security key';
    details.hidden = true;
    return;
  }
  if (queryParam('idp') !== null) showError('Your sign-in through your identity provider has expired. Start it again.');
  const box = byId('idp-options');
  for (const p of info.providers) {
    const link = document.createElement('a');
    link.className = 'btn btn-secondary btn-block';
    link.id = `idp-${p.name}`;
    link.href = `/.keygate/idp/${encodeURIComponent(p.name)}/start${returnTo === undefined ? '' : `?return_to=${encodeURIComponent(returnTo)}`}`;
    link.textContent = `Continue with ${p.displayName}`;
    box.append(link);
  }
  box.hidden = info.providers.length === 0;
}

function init(): void {
  void initProviders();
  if (!browserSupportsWebAuthn()) {
    showError(UNSUPPORTED_MESSAGE + ' Try a current version of Chrome, Edge, Firefox or Safari.');
    signinButton.disabled = true;
    emailButton.disabled = true;
    emailInput.disabled = true;
    return;
  }

  signinButton.addEventListener('click', () => {
    void signIn(signinButton);
  });

  emailForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const email = emailInput.value.trim();
    if (email === '' || !emailInput.checkValidity()) {
      emailInput.setAttribute('aria-invalid', 'true');
      showError(email === '' ? 'Enter your email address.' : 'Enter a valid email address, like name@example.com.');
      emailInput.focus();
      return;
    }
    emailInput.removeAttribute('aria-invalid');
    void signIn(emailButton, email);
  });

  emailInput.addEventListener('input', () => emailInput.removeAttribute('aria-invalid'));

  // Opening the disclosure moves focus to the field, so keyboard users land where they type,
  // and offers passkeys in its autofill; closing it withdraws the offer.
  details.addEventListener('toggle', () => {
    if (details.open) {
      emailInput.focus();
      void startConditional();
    } else if (conditionalRunning) {
      WebAuthnAbortService.cancelCeremony();
    }
  });

  const pkc = window.PublicKeyCredential as
    | (typeof PublicKeyCredential & {
        isConditionalMediationAvailable?: () => Promise<boolean>;
      })
    | undefined;
  if (pkc?.isConditionalMediationAvailable) {
    pkc
      .isConditionalMediationAvailable()
      .then((available) => {
        conditionalAvailable = available;
        if (available && details.open) void startConditional();
      })
      .catch(() => {});
  }
}

init();
