/**
 * `keygate admin … --gateway URL`: administration through a running gateway's admin API with
 * the person's own login (`keygate login` first). Every call is decided there by policy and
 * audited as theirs; a change needs a login within the step-up window, like in the console.
 * Results go to stdout (a secret or a link once), everything else to stderr.
 */
import { systemClock, type Clock } from '../../lib/clock.js';
import { AdminApi, AdminApiError } from '../client/admin-api.js';
import { clientContext } from '../client/context.js';
import { EXIT, type Output } from '../output.js';

export interface RemoteOptions {
  gateway?: string;
}

interface UserView {
  id: string;
  email: string;
  displayName: string;
  roles: string[];
  groups: string[];
  disabled: boolean;
  credentials?: {
    id: string;
    name: string;
    authenticator: string;
    synced: boolean;
    lastUsedAt: number | null;
    revokedAt: number | null;
  }[];
  sessions?: { id: string; lastSeenAt: number; ip: string }[];
}
interface GroupView {
  id: string;
  name: string;
  description: string;
  members: number | { id: string; email: string }[];
  roles: string[];
}
interface SpView {
  id: string;
  name: string;
  roles: string[];
  auth: string;
  secrets: { id: string; expiresAt: number }[];
  disabled: boolean;
}

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : new Date(ms).toISOString());

/** Run `fn` against the gateway's admin API; a refusal prints one line and exits 1. */
export async function withAdminApi(
  o: RemoteOptions,
  out: Output,
  fn: (api: AdminApi) => Promise<void>,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  try {
    const { store, gateway } = clientContext(o.gateway, env, clock);
    await fn(new AdminApi(gateway, store, clock));
    return EXIT.OK;
  } catch (e) {
    if (e instanceof AdminApiError) {
      out.err(`keygate: ${e.code}: ${e.message}`);
    } else {
      out.err(`keygate: ${(e as Error).message}`);
    }
    return EXIT.FAILED;
  }
}

/** A person named by email or user id. */
export async function userId(api: AdminApi, ref: string): Promise<string> {
  if (!ref.includes('@')) return ref;
  const r = await api.call<{ users: UserView[] }>('GET', `/users?q=${encodeURIComponent(ref)}&limit=500`);
  const u = r.users.find((x) => x.email.toLowerCase() === ref.toLowerCase());
  if (!u) throw new AdminApiError(404, 'NOT_FOUND', `no user with the email ${ref}`);
  return u.id;
}

const seg = (v: string) => encodeURIComponent(v);

export async function remoteInvite(
  email: string,
  o: { role?: string[]; name?: string },
  api: AdminApi,
  out: Output,
): Promise<void> {
  const r = await api.call<{ url: string; expiresAt: number; user: { email: string } }>('POST', '/invitations', {
    email,
    roles: o.role ?? [],
    ...(o.name === undefined ? {} : { displayName: o.name }),
  });
  out.out(r.url);
  out.err(`One-time enrollment link for ${r.user.email}, valid until ${iso(r.expiresAt)}.`);
}

export async function remoteRecover(email: string, api: AdminApi, out: Output): Promise<void> {
  const r = await api.call<{ url: string; expiresAt: number; user: { email: string } }>('POST', '/recovery-links', {
    email,
  });
  out.out(r.url);
  out.err(`One-time recovery link for ${r.user.email}, valid until ${iso(r.expiresAt)}.`);
}

export async function usersList(o: { query?: string }, api: AdminApi, out: Output): Promise<void> {
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ limit: '500' });
    if (o.query !== undefined) q.set('q', o.query);
    if (cursor !== null) q.set('cursor', cursor);
    const page: { users: UserView[]; next: string | null } = await api.call('GET', `/users?${q}`);
    for (const u of page.users) {
      out.out(
        `${u.email}\t${u.id}\t${u.roles.join(',') || '-'}\t${u.groups.join(',') || '-'}\t${u.disabled ? 'disabled' : 'active'}`,
      );
    }
    cursor = page.next;
  } while (cursor !== null);
}

export async function usersShow(ref: string, api: AdminApi, out: Output): Promise<void> {
  const u = await api.call<UserView>('GET', `/users/${seg(await userId(api, ref))}`);
  out.out(`email         ${u.email}`);
  out.out(`user id       ${u.id}`);
  out.out(`name          ${u.displayName}`);
  out.out(`roles         ${u.roles.join(', ') || '(none)'}`);
  out.out(`groups        ${u.groups.join(', ') || '(none)'}`);
  out.out(`state         ${u.disabled ? 'disabled' : 'active'}`);
  for (const c of u.credentials ?? []) {
    const state = c.revokedAt === null ? `last used ${iso(c.lastUsedAt)}` : `revoked ${iso(c.revokedAt)}`;
    out.out(`key           ${c.id}  ${c.name} (${c.authenticator}, ${c.synced ? 'synced' : 'device-bound'}), ${state}`);
  }
  for (const s of u.sessions ?? [])
    out.out(`session       ${s.id.slice(0, 16)}…  last seen ${iso(s.lastSeenAt)} from ${s.ip}`);
}

/** disable, enable or delete a person. */
export async function usersChange(
  verb: 'disable' | 'enable' | 'delete',
  ref: string,
  api: AdminApi,
  out: Output,
): Promise<void> {
  const id = await userId(api, ref);
  if (verb === 'delete') await api.call('DELETE', `/users/${seg(id)}`);
  else await api.call('POST', `/users/${seg(id)}/${verb}`);
  out.err(`${ref}: ${verb === 'delete' ? 'deleted' : `${verb}d`}.`);
}

export async function usersRevokeKey(ref: string, credentialId: string, api: AdminApi, out: Output): Promise<void> {
  const id = await userId(api, ref);
  await api.call('DELETE', `/users/${seg(id)}/credentials/${seg(credentialId)}`);
  out.err(`Key ${credentialId} of ${ref} revoked; the sessions made with it have ended.`);
}

export async function groupsList(api: AdminApi, out: Output): Promise<void> {
  const r = await api.call<{ groups: GroupView[] }>('GET', '/groups');
  for (const g of r.groups) out.out(`${g.name}\t${g.id}\t${String(g.members)} members\t${g.roles.join(',') || '-'}`);
}

export async function groupsShow(group: string, api: AdminApi, out: Output): Promise<void> {
  const g = await api.call<GroupView>('GET', `/groups/${seg(group)}`);
  out.out(`group         ${g.name} (${g.id})`);
  if (g.description !== '') out.out(`description   ${g.description}`);
  out.out(`roles         ${g.roles.join(', ') || '(none)'}`);
  for (const m of Array.isArray(g.members) ? g.members : []) out.out(`member        ${m.email}  ${m.id}`);
}

export async function groupsCreate(name: string, o: { description?: string }, api: AdminApi, out: Output) {
  const g = await api.call<GroupView>('POST', '/groups', {
    name,
    ...(o.description === undefined ? {} : { description: o.description }),
  });
  out.out(g.id);
  out.err(`Group ${g.name} created. Bind it to a role in the console or with POST /bindings.`);
}

export async function groupsDelete(group: string, api: AdminApi, out: Output): Promise<void> {
  await api.call('DELETE', `/groups/${seg(group)}`);
  out.err(`Group ${group} deleted; its members lose it at their next request.`);
}

export async function groupsMember(
  add: boolean,
  group: string,
  ref: string,
  api: AdminApi,
  out: Output,
): Promise<void> {
  const id = await userId(api, ref);
  await api.call(add ? 'PUT' : 'DELETE', `/groups/${seg(group)}/members/${seg(id)}`);
  out.err(`${ref} ${add ? 'added to' : 'removed from'} ${group}.`);
}

export async function remoteSpCreate(
  name: string,
  o: { role?: string[]; description?: string; secret: boolean; jwks?: { keys: unknown[] } },
  api: AdminApi,
  out: Output,
): Promise<void> {
  const r = await api.call<SpView & { clientSecret?: string; secretExpiresAt?: number }>(
    'POST',
    '/service-principals',
    {
      name,
      roles: o.role ?? [],
      secret: o.secret && o.jwks === undefined,
      ...(o.description === undefined ? {} : { description: o.description }),
      ...(o.jwks === undefined ? {} : { jwks: o.jwks }),
    },
  );
  out.err(`Service principal ${r.name} created; roles: ${r.roles.join(', ') || '(none)'}.`);
  out.err(`client_id: ${r.id}`);
  if (r.clientSecret !== undefined) {
    out.err(`The secret below is shown once; it expires ${iso(r.secretExpiresAt)}.`);
    out.out(`${r.id}:${r.clientSecret}`);
  } else {
    out.out(r.id);
  }
}

async function spId(api: AdminApi, ref: string): Promise<string> {
  const r = await api.call<{ servicePrincipals: SpView[] }>('GET', '/service-principals');
  const sp = r.servicePrincipals.find((x) => x.id === ref || x.name === ref);
  if (!sp) throw new AdminApiError(404, 'NOT_FOUND', `no service principal named ${ref}`);
  return sp.id;
}

export async function remoteSpRotate(ref: string, api: AdminApi, out: Output): Promise<void> {
  const id = await spId(api, ref);
  const r = await api.call<{
    clientId: string;
    clientSecret: string;
    secretExpiresAt: number;
    revokedSecretIds: string[];
  }>('POST', `/service-principals/${seg(id)}/secrets`);
  out.err(
    `New secret for ${ref}, valid until ${iso(r.secretExpiresAt)}. The previous secret keeps working until you revoke it` +
      (r.revokedSecretIds.length > 0 ? `; older ones were revoked (${r.revokedSecretIds.join(', ')}).` : '.'),
  );
  out.out(`${r.clientId}:${r.clientSecret}`);
}

export async function remoteSpRevokeSecret(ref: string, secretId: string, api: AdminApi, out: Output): Promise<void> {
  await api.call('DELETE', `/service-principals/${seg(await spId(api, ref))}/secrets/${seg(secretId)}`);
  out.err(`Secret ${secretId} of ${ref} revoked.`);
}

export async function remoteSpDisable(ref: string, api: AdminApi, out: Output): Promise<void> {
  await api.call('POST', `/service-principals/${seg(await spId(api, ref))}/disable`);
  out.err(`Service principal ${ref} disabled; its tokens are refused from now on.`);
}

export async function remoteSpList(api: AdminApi, out: Output): Promise<void> {
  const r = await api.call<{ servicePrincipals: SpView[] }>('GET', '/service-principals');
  for (const sp of r.servicePrincipals) {
    const auth =
      sp.auth === 'client_secret_basic'
        ? `secrets: ${sp.secrets.map((x) => `${x.id} (expires ${iso(x.expiresAt)})`).join(', ')}`
        : sp.auth === 'federation'
          ? 'federation only'
          : sp.auth;
    out.out(`${sp.name}\t${sp.id}\t${sp.roles.join(',') || '-'}\t${sp.disabled ? 'disabled' : auth}`);
  }
}
