/** Live browser sessions and token families (a person's CLI or SDK logins), each revocable. */
import { h } from './common.js';
import {
  arr,
  busy,
  button,
  call,
  confirmAction,
  done,
  enc,
  fail,
  Handled,
  loading,
  say,
  section,
  str,
  table,
  when,
} from './admin-core.js';
import { type Session, sessionTable } from './admin-users.js';
import type { View } from './admin-router.js';

interface Family {
  id: string;
  userId: string;
  client: string;
  createdAt: number;
  expiresAt: number;
}

export const sessions: View = (root, ctx) => {
  root.append(h('h1', { tabindex: '-1' }, 'Sessions'));
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'sessions-msg' });
  const live = h('div', { id: 'session-list' });
  const families = h('div', { id: 'family-list' });
  const liveSection = section('Browser sessions', live);
  const famSection = section(
    'Token families',
    h(
      'p',
      { class: 'hint' },
      'A token family is a person’s authorization of a client (keygate-cli, databricks-cli) with its refresh tokens. Ending it stops its refresh tokens and refuses its access tokens at once.',
    ),
    families,
  );
  root.append(msg, liveSection, famSection);

  // Names for user ids, best effort: the tables still work with ids alone.
  const names = new Map<string, string>();
  const namesLoaded = call<{ users: { id: string; email: string }[] }>('/users?limit=500').then(
    (r) => {
      for (const u of arr<{ id: string; email: string }>(r.users)) names.set(str(u.id), str(u.email));
    },
    () => undefined,
  );
  const who = (userId: string) => h('a', { href: `#/users/${enc(userId)}` }, names.get(userId) ?? userId);

  async function loadSessions(): Promise<void> {
    if (live.childElementCount === 0) loading(live);
    try {
      const [r] = await Promise.all([call<{ sessions: Session[] }>('/sessions'), namesLoaded]);
      if (ctx.signal.aborted) return;
      done(live, sessionTable(arr<Session>(r.sessions), who, msg, loadSessions));
    } catch (err) {
      if (!ctx.signal.aborted) fail(live, err, 'Sessions could not be loaded');
    }
  }

  async function loadFamilies(): Promise<void> {
    if (families.childElementCount === 0) loading(families);
    try {
      const [r] = await Promise.all([call<{ tokenFamilies: Family[] }>('/token-families'), namesLoaded]);
      if (ctx.signal.aborted) return;
      done(
        families,
        table(
          'Token families',
          [
            { label: 'Person', cell: (f: Family) => who(str(f.userId)) },
            { label: 'Client', cell: (f: Family) => h('span', { class: 'mono' }, str(f.client)) },
            { label: 'Created', cell: (f: Family) => when(f.createdAt) },
            { label: 'Expires', cell: (f: Family) => when(f.expiresAt, 'relative') },
            {
              label: 'Actions',
              cell: (f: Family) =>
                button(
                  'End',
                  async (b) => {
                    if (
                      !(await confirmAction(
                        'End this token family?',
                        `${str(f.client)} will have to log in again; its current access tokens are refused at once.`,
                        'End token family',
                      ))
                    )
                      return;
                    await busy(b, async () => {
                      try {
                        await call(`/token-families/${enc(str(f.id))}`, undefined, 'DELETE');
                        say(msg, 'The token family has ended.');
                        await loadFamilies();
                        if (!b.isConnected) famSection.querySelector<HTMLElement>('h2')?.focus();
                      } catch (err) {
                        if (!(err instanceof Handled))
                          say(msg, err instanceof Error ? err.message : 'Failed.', 'error');
                      }
                    });
                  },
                  'btn btn-danger-quiet btn-small',
                  `token family of ${str(f.client)}`,
                ),
            },
          ],
          arr<Family>(r.tokenFamilies),
          'No live token families.',
        ),
      );
    } catch (err) {
      if (!ctx.signal.aborted) fail(families, err, 'Token families could not be loaded');
    }
  }

  void loadSessions();
  void loadFamilies();
};
