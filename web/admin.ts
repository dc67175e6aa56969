/**
 * The admin console: a single page at /.keygate/admin/ with hash routes, talking to the admin
 * API with the session cookie. Views live in admin-*.ts; this file wires the shell — who is
 * signed in, the nav, the router, focus on navigation, the skip link.
 */
import { api, byId, clearMessages, h, loginUrl } from './common.js';
import { audit } from './admin-audit.js';
import { CONSOLE_PATH, errorBox, Handled, withAuth } from './admin-core.js';
import { dashboard } from './admin-dashboard.js';
import { groupDetail, groups } from './admin-groups.js';
import { policy } from './admin-policy.js';
import { resolve, type Route, type View } from './admin-router.js';
import { sessions } from './admin-sessions.js';
import { servicePrincipals } from './admin-sps.js';
import { userDetail, users } from './admin-users.js';

const notFound: View = (root) => {
  root.append(
    h('h1', { tabindex: '-1' }, 'No such page'),
    h('p', {}, 'That console page does not exist. ', h('a', { href: '#/dashboard' }, 'Go to the dashboard')),
  );
};

const ROUTES: Route[] = [
  { pattern: /^\/dashboard$/, view: dashboard, title: 'Dashboard', nav: 'dashboard' },
  { pattern: /^\/users$/, view: users, title: 'Users', nav: 'users' },
  { pattern: /^\/users\/([^/]+)$/, view: userDetail, title: 'User', nav: 'users' },
  { pattern: /^\/groups$/, view: groups, title: 'Groups', nav: 'groups' },
  { pattern: /^\/groups\/([^/]+)$/, view: groupDetail, title: 'Group', nav: 'groups' },
  {
    pattern: /^\/service-principals$/,
    view: servicePrincipals,
    title: 'Service principals',
    nav: 'service-principals',
  },
  { pattern: /^\/sessions$/, view: sessions, title: 'Sessions', nav: 'sessions' },
  { pattern: /^\/policy$/, view: policy, title: 'Policy', nav: 'policy' },
  { pattern: /^\/audit$/, view: audit, title: 'Audit log', nav: 'audit' },
  { pattern: /^\/.*$/, view: notFound, title: 'Not found', nav: '' },
];

interface SessionResponse {
  user: { id: string; email: string; displayName: string; roles: string[] };
}

const viewHost = byId('view');
const main = byId('main');
let current: AbortController | null = null;
let firstRender = true;

function render(): void {
  if (location.hash === '' || location.hash === '#' || location.hash === '#/') {
    history.replaceState(null, '', '#/dashboard');
  }
  const r = resolve(ROUTES, location.hash);
  if (!r) return; // not a console route (an in-page anchor): leave the view alone
  current?.abort();
  current = new AbortController();
  clearMessages();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#nav a[data-nav]')) {
    if (a.dataset['nav'] === r.route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${r.route.title} · Keygate admin`;
  const root = h('div', { class: 'view', 'data-view': r.route.nav || 'none' });
  viewHost.replaceChildren(root);
  try {
    r.route.view(root, { match: r.match, params: r.params, signal: current.signal });
  } catch (err) {
    root.append(errorBox(err, 'This page failed to draw'));
  }
  // Moving between views puts focus on the new heading, so screen readers announce it.
  if (!firstRender) root.querySelector<HTMLElement>('h1')?.focus();
  firstRender = false;
}

window.addEventListener('hashchange', render);
// A redirect to the login page, or an open fresh-login prompt, is not an error.
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof Handled) e.preventDefault();
});

// The skip link moves focus without touching the hash (which holds the route).
byId('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
  main.scrollIntoView({ block: 'start' });
});

const signout = byId<HTMLButtonElement>('signout');
signout.addEventListener('click', async () => {
  try {
    await api('/.keygate/api/session/logout', {});
  } catch {
    // Signed out already, or the gateway is unreachable: the login page says which.
  }
  location.assign(loginUrl(CONSOLE_PATH));
});

withAuth(() => api<SessionResponse>('/.keygate/api/session')).then(
  (s) => {
    const el = byId('user-email');
    el.textContent = s.user.email;
    el.title = s.user.email;
  },
  (err: unknown) => {
    if (!(err instanceof Handled)) byId('user-email').textContent = 'unknown';
  },
);

render();
