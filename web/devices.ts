import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { browserSupportsWebAuthn, startRegistration } from '@simplewebauthn/browser';
import {
  ApiError,
  api,
  byId,
  clearMessages,
  DEVICES_PATH,
  formatDate,
  formatDateTime,
  h,
  isBusy,
  LOGIN_PATH,
  loginUrl,
  setBusy,
  showError,
  showStatus,
  UNSUPPORTED_MESSAGE,
} from './common.js';

interface Credential {
  id: string;
  name: string;
  authenticator: string;
  synced: boolean;
  deviceBound: boolean;
  createdAt: number;
  lastUsedAt: number | null;
  current: boolean;
}

interface DevicesResponse {
  credentials: Credential[];
  hasRecovery: boolean;
}

interface SessionResponse {
  user: { id: string; email: string; displayName: string; roles: string[] };
  session: { authTime: number; expiresAt: number; uv: boolean; fresh: boolean };
}

const list = byId<HTMLUListElement>('credentials');
const addForm = byId<HTMLFormElement>('add-form');
const addButton = byId<HTMLButtonElement>('add-key');
const newNameInput = byId<HTMLInputElement>('new-key-name');
const signoutButton = byId<HTMLButtonElement>('signout');
const keysHeading = byId('keys-heading');

let credentials: Credential[] = [];
let hasRecovery = false;
let rowSeq = 0;

const SVG_NS = 'http://www.w3.org/2000/svg';

function icon(synced: boolean): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '22');
  svg.setAttribute('height', '22');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute(
    'd',
    synced
      ? // a cloud: synced through a passkey provider
        'M7.5 18h9a4 4 0 0 0 .6-7.95A5.5 5.5 0 0 0 6.6 9.2 4.4 4.4 0 0 0 7.5 18z'
      : // a key: bound to one device
        'M8 8a4 4 0 1 1 0 8 4 4 0 0 1 0-8zm4 4h9m-3 0v3.5m3-3.5v2.5',
  );
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '2');
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

/** Errors that mean "sign in (again)" get a link to the login page that comes back here. */
function showActionError(err: unknown): void {
  if (err instanceof ApiError && (err.code === 'FRESH_LOGIN_REQUIRED' || err.code === 'UNAUTHENTICATED')) {
    const message =
      err.code === 'FRESH_LOGIN_REQUIRED'
        ? 'For your security, adding a key needs a recent sign-in. Sign in again, then add the key.'
        : 'Your session has ended.';
    showError(message, h('a', { href: loginUrl(DEVICES_PATH) }, 'Sign in again'));
    return;
  }
  showError(err);
}

function rowFor(id: string): HTMLLIElement | null {
  for (const li of list.querySelectorAll<HTMLLIElement>('li[data-credential-id]')) {
    if (li.dataset['credentialId'] === id) return li;
  }
  return null;
}

function renderRow(cred: Credential): HTMLLIElement {
  const n = ++rowSeq;
  const nameId = `cred-name-${n}`;

  const nameEl = h('span', { class: 'cred-name', id: nameId }, cred.name);
  const badges = h(
    'span',
    { class: 'badges' },
    cred.synced
      ? h('span', { class: 'badge badge-synced' }, 'Synced passkey')
      : cred.deviceBound
        ? h('span', { class: 'badge badge-bound' }, 'Device-bound key')
        : h('span', { class: 'badge badge-bound' }, 'Passkey, not synced yet'),
    cred.current && h('span', { class: 'badge badge-current' }, 'This device'),
  );
  const title = h('div', { class: 'cred-title' }, nameEl, badges);

  const meta = h(
    'p',
    { class: 'cred-meta' },
    h('span', { class: 'cred-model' }, cred.authenticator),
    h(
      'span',
      { class: 'cred-dates' },
      `Added ${formatDate(cred.createdAt)} · `,
      cred.lastUsedAt === null ? 'never used' : `last used ${formatDateTime(cred.lastUsedAt)}`,
    ),
  );

  const renameButton = h(
    'button',
    { type: 'button', class: 'btn btn-secondary btn-small rename' },
    'Rename',
    h('span', { class: 'visually-hidden' }, ` ${cred.name}`),
  );
  const removeButton = h(
    'button',
    { type: 'button', class: 'btn btn-danger-quiet btn-small remove' },
    'Remove',
    h('span', { class: 'visually-hidden' }, ` ${cred.name}`),
  );
  const actions = h('div', { class: 'cred-actions' }, renameButton, removeButton);

  // Inline rename form (hidden until "Rename").
  const renameInputId = `rename-${n}`;
  const renameInput = h('input', {
    id: renameInputId,
    class: 'rename-input',
    type: 'text',
    maxlength: '64',
    autocomplete: 'off',
    required: true,
  });
  const saveButton = h('button', { type: 'submit', class: 'btn btn-primary btn-small save-rename' }, 'Save');
  const cancelRename = h('button', { type: 'button', class: 'btn btn-quiet btn-small cancel-rename' }, 'Cancel');
  const renameForm = h(
    'form',
    { class: 'rename-form', novalidate: true, hidden: true },
    h('label', { for: renameInputId, class: 'visually-hidden' }, `New name for ${cred.name}`),
    renameInput,
    saveButton,
    cancelRename,
  );

  // Remove confirmation (hidden until "Remove").
  const confirmButton = h(
    'button',
    { type: 'button', class: 'btn btn-danger btn-small confirm-remove' },
    'Confirm remove',
  );
  const cancelRemove = h('button', { type: 'button', class: 'btn btn-quiet btn-small cancel-remove' }, 'Cancel');
  const confirmBox = h(
    'div',
    { class: 'confirm', hidden: true, role: 'group', 'aria-labelledby': `confirm-${n}` },
    h(
      'p',
      { id: `confirm-${n}` },
      h('strong', {}, `Remove “${cred.name}”?`),
      cred.current
        ? ' You signed in with this key; you will need another key next time.'
        : ' You will no longer be able to sign in with it.',
    ),
    h('div', { class: 'confirm-actions' }, confirmButton, cancelRemove),
  );

  const li = h(
    'li',
    { class: cred.current ? 'cred cred-current' : 'cred', 'data-credential-id': cred.id },
    h('div', { class: cred.synced ? 'cred-icon synced' : 'cred-icon' }, icon(cred.synced)),
    h('div', { class: 'cred-body' }, title, renameForm, meta, confirmBox),
    actions,
  );

  const closeRename = (focus: boolean): void => {
    renameForm.hidden = true;
    title.hidden = false;
    actions.hidden = false;
    renameInput.removeAttribute('aria-invalid');
    if (focus) renameButton.focus();
  };
  const closeConfirm = (focus: boolean): void => {
    confirmBox.hidden = true;
    actions.hidden = false;
    if (focus) removeButton.focus();
  };

  renameButton.addEventListener('click', () => {
    closeConfirm(false);
    renameInput.value = cred.name;
    title.hidden = true;
    actions.hidden = true;
    renameForm.hidden = false;
    renameInput.focus();
    renameInput.select();
  });
  cancelRename.addEventListener('click', () => closeRename(true));
  renameForm.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      closeRename(true);
    }
  });
  renameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void rename(cred, renameInput, saveButton);
  });

  removeButton.addEventListener('click', () => {
    closeRename(false);
    actions.hidden = true;
    confirmBox.hidden = false;
    // Focus the safe choice, so a repeated Enter does not remove the key.
    cancelRemove.focus();
  });
  cancelRemove.addEventListener('click', () => closeConfirm(true));
  confirmBox.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      closeConfirm(true);
    }
  });
  confirmButton.addEventListener('click', () => {
    void remove(cred, confirmButton, () => closeConfirm(true));
  });

  return li;
}

/** Suggest a backup when one key is the only way in (no recovery link pending). */
function updateTip(): void {
  byId('backup-tip').hidden = credentials.length !== 1 || hasRecovery;
}

function render(data: DevicesResponse): void {
  credentials = data.credentials;
  hasRecovery = data.hasRecovery;
  list.removeAttribute('aria-busy');
  if (credentials.length === 0) {
    list.replaceChildren(h('li', { class: 'cred-empty' }, 'No keys are registered yet. Add one below.'));
  } else {
    list.replaceChildren(...credentials.map(renderRow));
  }
  updateTip();
}

async function load(): Promise<void> {
  render(await api<DevicesResponse>('/.keygate/api/devices'));
}

async function rename(cred: Credential, input: HTMLInputElement, button: HTMLButtonElement): Promise<void> {
  if (isBusy(button)) return;
  const name = input.value.trim();
  if (name === '') {
    input.setAttribute('aria-invalid', 'true');
    showError('Enter a name for the key.');
    input.focus();
    return;
  }
  if (name === cred.name) {
    rowFor(cred.id)?.querySelector<HTMLButtonElement>('.cancel-rename')?.click();
    return;
  }
  clearMessages();
  setBusy(button, true);
  try {
    const updated = await api<Credential>(`/.keygate/api/devices/${encodeURIComponent(cred.id)}`, { name }, 'PATCH');
    const merged: Credential = { ...cred, ...updated };
    credentials = credentials.map((c) => (c.id === cred.id ? merged : c));
    const row = rowFor(cred.id);
    const fresh = renderRow(merged);
    row?.replaceWith(fresh);
    fresh.querySelector<HTMLButtonElement>('.rename')?.focus();
    showStatus('Key renamed.');
  } catch (err) {
    setBusy(button, false);
    showActionError(err);
    input.focus();
  }
}

async function remove(cred: Credential, button: HTMLButtonElement, restore: () => void): Promise<void> {
  if (isBusy(button)) return;
  clearMessages();
  setBusy(button, true);
  try {
    await api(`/.keygate/api/devices/${encodeURIComponent(cred.id)}`, undefined, 'DELETE');
    const row = rowFor(cred.id);
    const next = (row?.nextElementSibling ?? row?.previousElementSibling) as HTMLElement | null;
    row?.remove();
    credentials = credentials.filter((c) => c.id !== cred.id);
    updateTip();
    if (credentials.length === 0) {
      list.replaceChildren(h('li', { class: 'cred-empty' }, 'No keys are registered yet. Add one below.'));
    }
    const target = next?.querySelector<HTMLButtonElement>('.rename');
    if (target) target.focus();
    else keysHeading.focus();
    showStatus(`Key removed.`);
  } catch (err) {
    setBusy(button, false);
    restore();
    showActionError(err);
  }
}

async function addKey(): Promise<void> {
  if (isBusy(addButton)) return;
  const name = newNameInput.value.trim();
  if (name === '') {
    newNameInput.setAttribute('aria-invalid', 'true');
    showError('Give the new key a name.');
    newNameInput.focus();
    return;
  }
  newNameInput.removeAttribute('aria-invalid');
  if (!browserSupportsWebAuthn()) {
    showError(UNSUPPORTED_MESSAGE);
    return;
  }
  clearMessages();
  setBusy(addButton, true);
  try {
    showStatus('Preparing registration…');
    const optionsJSON = await api<PublicKeyCredentialCreationOptionsJSON>(
      '/.keygate/api/webauthn/registration/options',
      {},
    );
    showStatus('Follow your browser’s prompt: insert and touch the new key, or confirm with your passkey.');
    const response = await startRegistration({ optionsJSON });
    showStatus('Saving your key…');
    await api('/.keygate/api/webauthn/registration/verify', { response, name });
    await load();
    newNameInput.value = 'Backup key';
    showStatus('Key registered.');
  } catch (err) {
    showActionError(err);
  } finally {
    setBusy(addButton, false);
  }
}

async function signOut(): Promise<void> {
  if (isBusy(signoutButton)) return;
  setBusy(signoutButton, true);
  try {
    await api('/.keygate/api/session/logout', undefined, 'POST');
    showStatus('Signed out.');
    location.assign(LOGIN_PATH);
  } catch (err) {
    setBusy(signoutButton, false);
    showError(err);
  }
}

async function init(): Promise<void> {
  addForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void addKey();
  });
  newNameInput.addEventListener('input', () => newNameInput.removeAttribute('aria-invalid'));
  signoutButton.addEventListener('click', () => {
    void signOut();
  });

  try {
    const { user } = await api<SessionResponse>('/.keygate/api/session');
    byId('user-email').textContent = user.email;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      location.replace(loginUrl(DEVICES_PATH));
      return;
    }
    showError(err);
    return;
  }

  showStatus('Loading your keys…');
  try {
    await load();
    byId('status').replaceChildren();
  } catch (err) {
    list.removeAttribute('aria-busy');
    showActionError(err);
  }
  const grantForm = byId<HTMLFormElement>('grant-form');
  grantForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void delegate();
  });
  await loadAgents().catch(showActionError);
}

/** Delegate from the page (the same API as `keygate agent grant`); the id is shown for the agent. */
async function delegate(): Promise<void> {
  clearMessages();
  const button = byId<HTMLButtonElement>('grant-add');
  setBusy(button, true);
  try {
    const g = await api<{ id: string }>('/.keygate/api/agents/grants', {
      agent: byId<HTMLInputElement>('grant-agent').value.trim(),
      actions: byId<HTMLInputElement>('grant-actions')
        .value.split(',')
        .map((a) => a.trim())
        .filter((a) => a !== ''),
      ttl: byId<HTMLInputElement>('grant-ttl').value.trim(),
    });
    byId('grant-id').textContent = g.id;
    byId('grant-made').hidden = false;
    await loadAgents();
  } catch (err) {
    showActionError(err);
  } finally {
    setBusy(button, false);
  }
}

interface ApprovalSummary {
  id: string;
  status: string;
  agent: { name: string };
  method: string;
  path: string;
  action: string;
  expiresAt: string;
}

interface GrantSummary {
  id: string;
  agent: { name: string };
  actions: string[];
  expiresAt: string;
  revokedAt: string | null;
  live: boolean;
}

/** The agents' side of the page: approvals still pending, and live delegations (each can be ended). */
async function loadAgents(): Promise<void> {
  const [{ approvals }, { grants }] = await Promise.all([
    api<{ approvals: ApprovalSummary[] }>('/.keygate/api/approvals'),
    api<{ grants: GrantSummary[] }>('/.keygate/api/agents/grants'),
  ]);
  const pending = approvals.filter((a) => a.status === 'pending');
  byId('approvals').replaceChildren(
    ...(pending.length === 0
      ? [h('li', { class: 'hint' }, 'Nothing is waiting.')]
      : pending.map((a) =>
          h(
            'li',
            { class: 'cred', 'data-approval': a.id },
            h('a', { href: `/.keygate/approve/${encodeURIComponent(a.id)}` }, `${a.agent.name}: ${a.method} ${a.path}`),
            h('span', { class: 'hint' }, ` ${a.action}, until ${formatDateTime(Date.parse(a.expiresAt))}`),
          ),
        )),
  );
  const live = grants.filter((g) => g.live);
  byId('grants').replaceChildren(
    ...(live.length === 0
      ? [h('li', { class: 'hint' }, 'No agent acts for you.')]
      : live.map((g) => {
          const end = h('button', { class: 'btn', type: 'button' }, 'End');
          end.addEventListener('click', () => {
            setBusy(end, true);
            api(`/.keygate/api/agents/grants/${encodeURIComponent(g.id)}`, undefined, 'DELETE')
              .then(() => loadAgents())
              .catch(showActionError);
          });
          return h(
            'li',
            { class: 'cred', 'data-grant': g.id },
            h('strong', {}, g.agent.name),
            h('span', { class: 'hint' }, ` ${g.actions.join(', ')} until ${formatDateTime(Date.parse(g.expiresAt))} `),
            end,
          );
        })),
  );
}

void init();
