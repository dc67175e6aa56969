/** People: the list and search, invitations, SCIM provisioning, and one person's keys, sessions and status. */
import { h } from './common.js';
import {
  arr,
  attempt,
  badge,
  busy,
  button,
  call,
  confirmAction,
  confirmButton,
  done,
  enc,
  facts,
  fail,
  field,
  Handled,
  leave,
  loading,
  qs,
  roleBadges,
  rolePicker,
  say,
  section,
  showOnce,
  str,
  table,
  titled,
  usageColumns,
  when,
} from './admin-core.js';
import { personGroups } from './admin-groups.js';
import type { View } from './admin-router.js';
import { scimSection } from './admin-scim.js';

interface User {
  id: string;
  email: string;
  displayName: string;
  roles: string[];
  groups: string[];
  createdAt: number;
  disabled: boolean;
  disabledAt: number | null;
}

interface Credential {
  id: string;
  name: string;
  aaguid: string;
  authenticator: string;
  /** security-key, platform, password-manager, virtual or unknown. */
  kind: string;
  /** The model's icon from the FIDO metadata BLOB (a data: URL), where configured. */
  icon: string | null;
  synced: boolean;
  backupEligible: boolean;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface Session {
  id: string;
  userId: string;
  credentialId: string;
  authTime: number;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  ip: string;
  userAgent: string;
}

interface Link {
  url: string;
  expiresAt: number;
  user: { id: string; email: string };
}

/** Glyphs for the kinds of authenticator, where the metadata BLOB gives no icon (24×24, even-odd fill). */
const GLYPH: Record<string, string> = {
  'security-key':
    'M7 16a4 4 0 1 1 3.46-6H21v3h-2v3h-3v-3h-5.54A4 4 0 0 1 7 16zm0-2.5a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z',
  platform: 'M4 5h16v11H4zm2 2v7h12V7zM2 18h20v2H2z',
  'password-manager': 'M7 10V7a5 5 0 0 1 10 0v3h1v11H6V10zm2 0h6V7a3 3 0 0 0-6 0z',
  virtual: 'M4 4h16v16H4zm3 3v10h10V7z',
  unknown: 'M12 2a10 10 0 1 1 0 20 10 10 0 0 1 0-20zm0 3a8 8 0 1 0 0 16 8 8 0 0 0 0-16z',
};

/** The authenticator's icon (from the BLOB where known, else a glyph for its kind) and model name. */
function authenticatorCell(c: Credential): HTMLElement {
  const name = str(c.authenticator) || 'Unknown';
  let icon: Element;
  if (typeof c.icon === 'string' && c.icon.startsWith('data:image/')) {
    icon = h('img', { class: 'auth-icon', src: c.icon, alt: '', width: '20', height: '20' });
  } else {
    const ns = 'http://www.w3.org/2000/svg';
    icon = document.createElementNS(ns, 'svg');
    icon.setAttribute('class', 'auth-icon');
    icon.setAttribute('viewBox', '0 0 24 24');
    icon.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', GLYPH[str(c.kind)] ?? (GLYPH.unknown as string));
    path.setAttribute('fill-rule', 'evenodd');
    path.setAttribute('fill', 'currentColor');
    icon.append(path);
  }
  return h('span', { class: 'auth-model', 'data-kind': str(c.kind) || 'unknown' }, icon, name);
}

export function keyKind(c: { synced?: unknown; backupEligible?: unknown }): string {
  if (c.synced === true) return 'Synced passkey';
  if (c.backupEligible === true) return 'Passkey, not synced yet';
  return 'Device-bound';
}

/** A short browser name from a user agent, with the whole string as a tooltip. */
export function agent(ua: unknown): HTMLElement | string {
  const s = str(ua);
  if (s === '') return '—';
  const m = /(Edg|Firefox|Chrome|Chromium|Safari|curl|node|undici)[/ ]?[\d.]*/.exec(s);
  return h('span', { title: s }, m ? m[0] : s.slice(0, 40));
}

// ---- the list -------------------------------------------------------------------------------

export const users: View = (root, ctx) => {
  root.append(h('h1', { tabindex: '-1' }, 'Users'));

  // Invite
  const inviteMsg = h('div', { role: 'status', 'aria-live': 'polite' });
  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off', spellcheck: 'false' });
  const roles = rolePicker();
  const display = h('input', { type: 'text', name: 'displayName', autocomplete: 'off' });
  const inviteBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'invite-submit' }, 'Create invitation');
  const inviteForm = h(
    'form',
    { class: 'form-grid', id: 'invite-form', novalidate: true },
    field('Email', email).wrap,
    field('Display name (optional)', display).wrap,
    roles.wrap,
    h('div', { class: 'form-actions' }, inviteBtn),
  );
  const inviteOut = h('div', { id: 'invite-result' });
  inviteForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (inviteBtn.dataset['busy'] === 'true') return;
    if (!email.checkValidity() || email.value.trim() === '') {
      email.setAttribute('aria-invalid', 'true');
      say(inviteMsg, 'Enter the email address of the person to invite.', 'error');
      email.focus();
      return;
    }
    email.removeAttribute('aria-invalid');
    void busy(inviteBtn, async () => {
      try {
        const body: Record<string, unknown> = { email: email.value.trim(), roles: roles.value() };
        if (display.value.trim() !== '') body['displayName'] = display.value.trim();
        const link = await call<Link>('/invitations', body);
        say(inviteMsg, `Invitation created for ${str(link.user?.email)}.`);
        showOnce(inviteOut, {
          title: `Enrollment link for ${str(link.user?.email)}`,
          warning: `Send this link to them directly. It works once and expires ${new Date(link.expiresAt).toLocaleString()}. It is not shown again.`,
          fields: [{ label: 'Enrollment link', value: str(link.url) }],
        });
        inviteForm.reset();
        void reloadList();
      } catch (err) {
        if (!(err instanceof Handled)) inviteOut.replaceChildren();
        if (!(err instanceof Handled)) say(inviteMsg, errMsg(err), 'error');
      }
    });
  });
  root.append(section('Invite someone', inviteForm, inviteMsg, inviteOut));

  // Search and list
  const q = h('input', { type: 'search', name: 'q', autocomplete: 'off', spellcheck: 'false' });
  q.value = ctx.params.get('q') ?? '';
  const searchForm = h(
    'form',
    { class: 'search', role: 'search', id: 'user-search' },
    field('Search by email or name', q).wrap,
    h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Search'),
  );
  const listBox = h('div', { id: 'user-list' });
  const more = h('div');
  searchForm.addEventListener('submit', (e) => {
    e.preventDefault();
    history.replaceState(null, '', `#/users${qs({ q: q.value.trim() })}`);
    void reloadList();
  });
  root.append(section('People', searchForm, listBox, more), scimSection(ctx.signal));

  let rows: User[] = [];
  const columns = [
    {
      label: 'Email',
      cell: (u: User) => h('a', { href: `#/users/${enc(str(u.id))}`, class: 'user-link' }, str(u.email)),
    },
    { label: 'Name', cell: (u: User) => str(u.displayName) || '—' },
    { label: 'Roles', cell: (u: User) => roleBadges(u.roles) },
    { label: 'Status', cell: (u: User) => (u.disabled ? badge('Disabled', 'danger') : badge('Active', 'ok')) },
    { label: 'Added', cell: (u: User) => when(u.createdAt) },
  ];

  async function page(cursor: string | null): Promise<void> {
    if (cursor === null) loading(listBox);
    try {
      const r = await call<{ users: User[]; next: string | null }>(
        `/users${qs({ q: q.value.trim(), limit: 50, cursor })}`,
      );
      if (ctx.signal.aborted) return;
      const before = cursor === null ? 0 : rows.length;
      rows = cursor === null ? arr<User>(r.users) : rows.concat(arr<User>(r.users));
      done(listBox, table('Users', columns, rows, q.value.trim() ? 'Nobody matches that search.' : 'No users yet.'));
      more.replaceChildren();
      // "Load more" goes away with its page: focus the first of the new rows instead.
      if (cursor !== null) listBox.querySelectorAll<HTMLElement>('a.user-link')[before]?.focus();
      if (typeof r.next === 'string') {
        const next = r.next;
        more.append(button('Load more', (b) => busy(b, () => page(next)), 'btn btn-secondary', 'users'));
      }
    } catch (err) {
      if (!ctx.signal.aborted) fail(listBox, err, 'Users could not be loaded');
    }
  }
  const reloadList = () => page(null);
  void reloadList();
};

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : 'Something went wrong.';
}

// ---- one person -----------------------------------------------------------------------------

export const userDetail: View = (root, ctx) => {
  const id = ctx.match[1] ?? '';
  const title = h('h1', { tabindex: '-1' }, 'User');
  root.append(h('p', { class: 'crumbs' }, h('a', { href: '#/users' }, '← All users')), title);
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'user-msg' });
  const summary = h('div');
  const actions = h('div', { class: 'actions' });
  const linkOut = h('div');
  const keys = h('div', { id: 'user-keys' });
  const sessions = h('div', { id: 'user-sessions' });
  const groups = h('div', { id: 'user-groups' });
  const keysSection = section('Security keys and passkeys', keys);
  const sessionsSection = section('Live sessions', sessions);
  const groupsSection = section('Groups', groups);
  root.append(msg, summary, actions, linkOut, groupsSection, keysSection, sessionsSection);

  /** A change, then say so and redraw (its button may go with it: `attempt` keeps focus in the view). */
  const change = (fn: () => Promise<unknown>, ok: string) => async () => {
    await fn();
    say(msg, ok);
    await load();
  };

  async function load(): Promise<void> {
    if (summary.childElementCount === 0) loading(summary);
    let u: User & { credentials: Credential[]; sessions: Session[] };
    try {
      u = await call(`/users/${enc(id)}`);
    } catch (err) {
      if (!ctx.signal.aborted) fail(summary, err, 'This user could not be loaded');
      for (const s of [groupsSection, keysSection, sessionsSection]) s.hidden = true;
      return;
    }
    if (ctx.signal.aborted) return;
    titled(title, str(u.email) || 'User');
    done(
      summary,
      facts([
        ['Name', str(u.displayName) || '—'],
        ['Roles', roleBadges(u.roles)],
        ['Status', u.disabled ? badge('Disabled', 'danger') : badge('Active', 'ok')],
        ['Added', when(u.createdAt)],
        ['ID', h('span', { class: 'mono' }, str(u.id))],
      ]),
    );

    const email = str(u.email);
    actions.replaceChildren(
      u.disabled
        ? button(
            'Enable',
            (b) =>
              attempt(
                b,
                msg,
                change(() => call(`/users/${enc(id)}/enable`, {}), `${email} can sign in again.`),
              ),
            'btn btn-secondary',
          )
        : confirmButton(
            'Disable',
            {
              title: `Disable ${email}?`,
              message: 'Their sessions and token families end now, and they cannot sign in until enabled again.',
              confirm: 'Disable',
            },
            msg,
            change(() => call(`/users/${enc(id)}/disable`, {}), `${email} is disabled.`),
          ),
      confirmButton(
        'End all sessions',
        {
          title: `End all of ${email}'s sessions?`,
          message: 'They will have to sign in again in every browser.',
          confirm: 'End sessions',
        },
        msg,
        change(() => call(`/users/${enc(id)}/sessions`, undefined, 'DELETE'), 'Their sessions have ended.'),
      ),
      button(
        'Create a recovery link',
        (b) =>
          busy(b, async () => {
            try {
              const link = await call<Link>('/recovery-links', { email });
              say(msg, `Recovery link created for ${email}.`);
              showOnce(linkOut, {
                title: `Recovery link for ${email}`,
                warning: `It lets them register a new key. Send it to them directly (after checking it is really them). It works once and expires ${new Date(link.expiresAt).toLocaleString()}. It is not shown again.`,
                fields: [{ label: 'Recovery link', value: str(link.url) }],
              });
            } catch (err) {
              if (!(err instanceof Handled)) say(msg, errMsg(err), 'error');
            }
          }),
        'btn btn-secondary',
      ),
      confirmButton(
        'Delete user',
        {
          title: `Delete ${email}?`,
          message:
            'Their sessions, token families and access tokens end now, and they, their keys and their group memberships are removed. Their audit records stay. This cannot be undone.',
          confirm: 'Delete user',
        },
        msg,
        async () => {
          await call(`/users/${enc(id)}`, undefined, 'DELETE');
          leave('#/users', `${email} was deleted.`);
        },
        'btn btn-danger-quiet delete-user',
      ),
    );

    const creds = arr<Credential>(u.credentials);
    done(
      keys,
      table(
        `Keys of ${email}`,
        [
          { label: 'Name', cell: (c: Credential) => str(c.name) || '—' },
          { label: 'Authenticator', cell: authenticatorCell },
          { label: 'Kind', cell: (c: Credential) => keyKind(c) },
          { label: 'Added', cell: (c: Credential) => when(c.createdAt) },
          ...usageColumns<Credential>(),
          {
            label: 'Actions',
            cell: (c: Credential) =>
              c.revokedAt === null
                ? h(
                    'span',
                    { class: 'cell-actions', 'data-credential-id': str(c.id) },
                    confirmButton(
                      'Revoke',
                      {
                        title: `Revoke “${str(c.name)}”?`,
                        message: `${email} can no longer sign in with this key, and the sessions made with it end.`,
                        confirm: 'Revoke key',
                      },
                      msg,
                      change(
                        () => call(`/users/${enc(id)}/credentials/${enc(str(c.id))}`, undefined, 'DELETE'),
                        `The key “${str(c.name)}” is revoked.`,
                      ),
                      'btn btn-danger-quiet btn-small revoke-key',
                      str(c.name),
                    ),
                  )
                : null,
          },
        ],
        creds,
        'No keys registered.',
      ),
    );

    done(sessions, sessionTable(arr<Session>(u.sessions), null, msg, load));
    await personGroups(groups, ctx.signal, { id, email, groups: u.groups }, msg, load);
  }
  void load();
};

/** Sessions with an "End" button each (shared with the sessions view). */
export function sessionTable(
  list: Session[],
  who: ((userId: string) => Node | string) | null,
  msg: HTMLElement,
  reload: () => Promise<void>,
): HTMLElement {
  const cols = [
    ...(who ? [{ label: 'Person', cell: (s: Session) => who(str(s.userId)) }] : []),
    { label: 'Signed in', cell: (s: Session) => when(s.authTime) },
    { label: 'Last seen', cell: (s: Session) => when(s.lastSeenAt, 'relative') },
    { label: 'Expires', cell: (s: Session) => when(s.expiresAt, 'relative') },
    { label: 'IP', cell: (s: Session) => h('span', { class: 'mono' }, str(s.ip) || '—') },
    { label: 'Browser', cell: (s: Session) => agent(s.userAgent) },
    {
      label: 'Actions',
      cell: (s: Session) =>
        button(
          'End',
          async (b) => {
            if (!(await confirmAction('End this session?', 'That browser will have to sign in again.', 'End session')))
              return;
            await busy(b, async () => {
              try {
                await call(`/sessions/${enc(str(s.id))}`, undefined, 'DELETE');
                say(msg, 'The session has ended.');
                await reload();
                if (!b.isConnected) document.querySelector<HTMLElement>('h1')?.focus();
              } catch (err) {
                if (!(err instanceof Handled)) say(msg, errMsg(err), 'error');
              }
            });
          },
          'btn btn-danger-quiet btn-small',
          'session',
        ),
    },
  ];
  return table('Live sessions', cols, list, 'No live sessions.');
}
