/**
 * SCIM 2.0 (RFC 7643, RFC 7644) at `/.keygate/scim/v2/`: an identity provider (Okta, Entra ID)
 * provisions people and groups. scimmy parses and formats the resources, filters, patches and
 * errors; this file maps them onto Keygate's store and the people services.
 *
 *  - Users: `userName` is the email; `active: false` disables the person — their sessions,
 *    refresh-token families and access tokens end at once on every replica (within a second),
 *    and logins are refused; DELETE removes them the same way first.
 *  - Groups: Keygate groups; `members` is the membership, applied to the members' next request.
 *
 * Callers authenticate with a SCIM bearer token an admin created (stored as its SHA-256); every
 * change is a `scim.change` audit record naming the token.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import SCIMMY from 'scimmy';
import type { AuditChange, AuditEntry } from '../audit/record.js';
import { isEmail } from '../authenticate/enrollment.js';
import { randomId, sha256Hex } from '../crypto/random.js';
import type { GroupRecord, ScimTokenRecord, Store, UserRecord } from '../store/types.js';

export const SCIM_PREFIX = '/.keygate/scim/v2';
const SCIM_JSON = 'application/scim+json';
/** Lists are filtered in memory over at most this many records. */
const MAX_SCAN = 50_000;

export interface ScimDeps {
  store: Store;
  now: () => number;
  /** Disable or enable a person; disabling ends their sessions and tokens everywhere at once. */
  setDisabled: (user: UserRecord, disabled: boolean) => Promise<void>;
  /** Delete a person after ending everything that lets them in. */
  deleteUser: (user: UserRecord) => Promise<void>;
  /** A person's groups changed: their next request re-reads them. */
  groupsChanged: (userId: string) => void;
  audit: (e: AuditEntry) => void;
}

interface Ctx {
  d: ScimDeps;
  token: ScimTokenRecord;
  req: FastifyRequest;
}

type ScimUser = Record<string, unknown> & {
  userName?: string;
  displayName?: string;
  externalId?: string;
  active?: boolean;
  name?: { formatted?: string; givenName?: string; familyName?: string };
  emails?: { value?: string; primary?: boolean }[];
};
type ScimGroup = Record<string, unknown> & {
  displayName?: string;
  externalId?: string;
  members?: { value?: string }[];
};

const scimError = (status: number, scimType: string | null, detail: string) =>
  new SCIMMY.Types.Error(status as never, scimType as never, detail);

/** A new SCIM bearer token: the value (shown once) and the record to store (its hash). */
export function newScimToken(name: string, createdBy: string, at: number): { value: string; record: ScimTokenRecord } {
  const value = `kgscim_${randomId(32)}`;
  return {
    value,
    record: {
      id: randomUUID(),
      name,
      hash: sha256Hex(value),
      createdAt: at,
      createdBy,
      lastUsedAt: null,
      revokedAt: null,
    },
  };
}

/**
 * The value of a filter that is exactly `<attribute> eq "value"` (a string), else undefined.
 * Such lists are answered from one lookup.
 */
function equalityOn(filter: SCIMMY.Types.Filter | undefined, attribute: string): string | undefined {
  if (filter === undefined || filter.length !== 1) return undefined;
  const expr = filter[0] as Record<string, unknown>;
  const keys = Object.keys(expr);
  if (keys.length !== 1 || keys[0]?.toLowerCase() !== attribute.toLowerCase()) return undefined;
  const cond = expr[keys[0] as string];
  return Array.isArray(cond) && cond.length === 2 && cond[0] === 'eq' && typeof cond[1] === 'string'
    ? cond[1]
    : undefined;
}

// ---- users --------------------------------------------------------------------------------

function userToScim(u: UserRecord, groups: GroupRecord[]): Record<string, unknown> {
  return {
    id: u.id,
    ...(u.externalId === null ? {} : { externalId: u.externalId }),
    userName: u.email,
    displayName: u.displayName,
    name: { formatted: u.displayName },
    emails: [{ value: u.email, type: 'work', primary: true }],
    active: u.disabledAt === null,
    groups: groups.map((g) => ({ value: g.id, display: g.name, $ref: `${SCIM_PREFIX}/Groups/${g.id}` })),
    meta: { created: new Date(u.createdAt).toISOString() },
  };
}

/** The email a SCIM user stands for: userName, else the primary email. */
function emailOf(s: ScimUser): string {
  const candidates = [s.userName, s.emails?.find((e) => e.primary)?.value, s.emails?.[0]?.value];
  const email = candidates.find((c): c is string => typeof c === 'string' && isEmail(c.trim()));
  if (email === undefined) throw scimError(400, 'invalidValue', 'userName must be an email address');
  return email.trim().toLowerCase();
}

function displayNameOf(s: ScimUser, email: string): string {
  const n = s.name;
  const given = [n?.givenName, n?.familyName].filter((x) => typeof x === 'string' && x !== '').join(' ');
  const name = s.displayName ?? n?.formatted ?? (given === '' ? undefined : given);
  return (typeof name === 'string' && name.trim() !== '' ? name.trim() : email).slice(0, 128);
}

/** A person's groups as records, from the groups read once (a list of people shares one read). */
async function groupsOf(store: Store, u: UserRecord, all?: Map<string, GroupRecord>): Promise<GroupRecord[]> {
  const byName = all ?? (await groupIndex(store));
  return u.groups.map((name) => byName.get(name)).filter((g): g is GroupRecord => g !== undefined);
}

async function groupIndex(store: Store): Promise<Map<string, GroupRecord>> {
  return new Map((await store.listGroups()).map((g) => [g.name, g]));
}

async function userOr404(store: Store, id: string): Promise<UserRecord> {
  const u = await store.getUser(id);
  if (u === null) throw scimError(404, null, `Resource ${id} not found`);
  return u;
}

function changed(c: Ctx, change: AuditChange): void {
  const ua = c.req.headers['user-agent'];
  c.d.audit({
    kind: 'scim.change',
    at: c.d.now(),
    actor: { type: 'system', id: c.token.id, via: `scim:${c.token.name}` },
    request: {
      method: c.req.method,
      path: c.req.url.split('?')[0] ?? '',
      ip: c.req.ip,
      ...(ua === undefined ? {} : { userAgent: ua.slice(0, 256) }),
      requestId: c.req.id,
    },
    change,
    outcome: 'success',
  });
}

/** scimmy's handler types are tied to its schema classes; Keygate's handlers take plain objects. */
interface Declared {
  egress(h: (resource: SCIMMY.Types.Resource, ctx: Ctx) => Promise<unknown>): Declared;
  ingress(h: (resource: SCIMMY.Types.Resource, instance: never, ctx: Ctx) => Promise<unknown>): Declared;
  degress(h: (resource: SCIMMY.Types.Resource, ctx: Ctx) => Promise<void>): Declared;
}
const declare = (r: typeof SCIMMY.Resources.User | typeof SCIMMY.Resources.Group) =>
  SCIMMY.Resources.declare(r) as unknown as Declared;

declare(SCIMMY.Resources.User)
  .egress(async (resource: SCIMMY.Types.Resource, c: Ctx) => {
    const { store } = c.d;
    if (resource.id !== undefined) {
      const u = await userOr404(store, resource.id);
      return userToScim(u, await groupsOf(store, u));
    }
    // What provisioning clients send most (`userName eq "…"` before every create) is one lookup.
    const wanted = equalityOn(resource.filter, 'userName');
    const all =
      wanted === undefined
        ? await store.listUsers({ limit: MAX_SCAN })
        : [await store.getUserByEmail(wanted)].filter((u): u is UserRecord => u !== null);
    const index = await groupIndex(store);
    const scim = await Promise.all(all.map(async (u) => userToScim(u, await groupsOf(store, u, index))));
    // userName is not case-exact (RFC 7643 §4.1.1): the lookup above already compared it so.
    return resource.filter === undefined || wanted !== undefined ? scim : resource.filter.match(scim);
  })
  .ingress(async (resource: SCIMMY.Types.Resource, instance: ScimUser, c: Ctx) => {
    const { store } = c.d;
    const email = emailOf(instance);
    const displayName = displayNameOf(instance, email);
    const externalId = typeof instance.externalId === 'string' ? instance.externalId.slice(0, 256) : null;
    if (resource.id === undefined) {
      // Create. An existing person with that email is a conflict (the client then links to it).
      if ((await store.getUserByEmail(email)) !== null) {
        throw scimError(409, 'uniqueness', `A user with userName ${email} exists already`);
      }
      const created = await store.upsertUser(
        { id: randomUUID(), email, displayName, webauthnId: randomId(32), createdAt: c.d.now() },
        [],
      );
      await store.updateUser(created.id, { externalId });
      if (instance.active === false) await c.d.setDisabled(created, true);
      changed(c, {
        op: 'user.create',
        target: `user:${created.id}`,
        after: { email, displayName, externalId, active: instance.active !== false },
      });
      const u = (await store.getUser(created.id)) as UserRecord;
      return userToScim(u, []);
    }
    // Replace (PUT) or the result of a PATCH.
    const before = await userOr404(store, resource.id);
    if (email !== before.email) {
      const other = await store.getUserByEmail(email);
      if (other !== null && other.id !== before.id) {
        throw scimError(409, 'uniqueness', `A user with userName ${email} exists already`);
      }
    }
    await store.updateUser(before.id, { email, displayName, externalId });
    const active = instance.active !== false;
    if (active !== (before.disabledAt === null)) await c.d.setDisabled(before, !active);
    changed(c, {
      op: 'user.update',
      target: `user:${before.id}`,
      before: {
        email: before.email,
        displayName: before.displayName,
        externalId: before.externalId,
        active: before.disabledAt === null,
      },
      after: { email, displayName, externalId, active },
    });
    const u = (await store.getUser(before.id)) as UserRecord;
    return userToScim(u, await groupsOf(store, u));
  })
  .degress(async (resource: SCIMMY.Types.Resource, c: Ctx) => {
    const u = await userOr404(c.d.store, resource.id as string);
    await c.d.deleteUser(u);
    changed(c, { op: 'user.delete', target: `user:${u.id}`, before: { email: u.email, externalId: u.externalId } });
  });

// ---- groups -------------------------------------------------------------------------------

async function groupToScim(store: Store, g: GroupRecord): Promise<Record<string, unknown>> {
  const members = await store.listGroupMembers(g.id);
  return {
    id: g.id,
    ...(g.externalId === null ? {} : { externalId: g.externalId }),
    displayName: g.name,
    members: members.map((u) => ({ value: u.id, display: u.email, $ref: `${SCIM_PREFIX}/Users/${u.id}` })),
    meta: { created: new Date(g.createdAt).toISOString() },
  };
}

async function groupOr404(store: Store, id: string): Promise<GroupRecord> {
  const g = await store.getGroup(id);
  if (g === null || g.id !== id) throw scimError(404, null, `Resource ${id} not found`);
  return g;
}

/** Make the membership exactly `wanted` (user ids); unknown ids are refused before anything changes. */
async function setMembers(c: Ctx, g: GroupRecord, wanted: string[]): Promise<{ added: string[]; removed: string[] }> {
  const { store } = c.d;
  for (const id of wanted) {
    if ((await store.getUser(id)) === null) throw scimError(400, 'invalidValue', `members: no user with id ${id}`);
  }
  const current = new Set((await store.listGroupMembers(g.id)).map((u) => u.id));
  const next = new Set(wanted);
  const added = [...next].filter((id) => !current.has(id));
  const removed = [...current].filter((id) => !next.has(id));
  for (const id of added) await store.addGroupMember(g.id, id, c.d.now());
  for (const id of removed) await store.removeGroupMember(g.id, id);
  for (const id of [...added, ...removed]) c.d.groupsChanged(id);
  return { added, removed };
}

const memberIds = (s: ScimGroup): string[] => [
  ...new Set((s.members ?? []).map((m) => m.value).filter((v): v is string => typeof v === 'string')),
];

declare(SCIMMY.Resources.Group)
  .egress(async (resource: SCIMMY.Types.Resource, c: Ctx) => {
    const { store } = c.d;
    if (resource.id !== undefined) return groupToScim(store, await groupOr404(store, resource.id));
    const groups = await store.listGroups();
    const all = await Promise.all(groups.map((g) => groupToScim(store, g)));
    return resource.filter === undefined ? all : resource.filter.match(all);
  })
  .ingress(async (resource: SCIMMY.Types.Resource, instance: ScimGroup, c: Ctx) => {
    const { store } = c.d;
    const name = typeof instance.displayName === 'string' ? instance.displayName.trim() : '';
    if (name === '' || name.length > 256)
      throw scimError(400, 'invalidValue', 'displayName must be 1 to 256 characters');
    const externalId = typeof instance.externalId === 'string' ? instance.externalId.slice(0, 256) : null;
    if (resource.id === undefined) {
      const g: GroupRecord = {
        id: randomUUID(),
        name,
        description: '',
        createdAt: c.d.now(),
        createdBy: `scim:${c.token.name}`,
        externalId,
      };
      if (!(await store.insertGroup(g))) throw scimError(409, 'uniqueness', `A group named ${name} exists already`);
      const m = await setMembers(c, g, memberIds(instance));
      changed(c, { op: 'group.create', target: `group:${g.id}`, after: { name, externalId, members: m.added } });
      return groupToScim(store, g);
    }
    const before = await groupOr404(store, resource.id);
    if (name !== before.name) {
      const other = await store.getGroup(name);
      if (other !== null && other.id !== before.id)
        throw scimError(409, 'uniqueness', `A group named ${name} exists already`);
    }
    await store.updateGroup(before.id, { name, externalId });
    const m = await setMembers(c, before, memberIds(instance));
    // A rename changes the group name its members carry.
    if (name !== before.name) for (const u of await store.listGroupMembers(before.id)) c.d.groupsChanged(u.id);
    changed(c, {
      op: 'group.update',
      target: `group:${before.id}`,
      before: { name: before.name },
      after: { name, externalId, addedMembers: m.added, removedMembers: m.removed },
    });
    return groupToScim(store, (await store.getGroup(before.id)) as GroupRecord);
  })
  .degress(async (resource: SCIMMY.Types.Resource, c: Ctx) => {
    const g = await groupOr404(c.d.store, resource.id as string);
    const members = await c.d.store.listGroupMembers(g.id);
    await c.d.store.deleteGroup(g.id);
    for (const u of members) c.d.groupsChanged(u.id);
    changed(c, {
      op: 'group.delete',
      target: `group:${g.id}`,
      before: { name: g.name, members: members.map((u) => u.id) },
    });
  });

SCIMMY.Config.set({
  documentationUri: 'https://github.com/keygate/keygate/blob/main/docs/guides/scim.md',
  patch: true,
  filter: { supported: true, maxResults: 1000 },
  sort: false,
  bulk: false,
  changePassword: false,
  etag: false,
  authenticationSchemes: [
    {
      type: 'oauthbearertoken',
      name: 'SCIM bearer token',
      description: 'A token an admin created in Keygate (console or POST /.keygate/api/admin/v1/scim-tokens).',
    },
  ],
});
// Entra ID sends the enterprise extension (department, employeeNumber, …): accepted, not kept.
SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false);
SCIMMY.Resources.User.basepath(SCIM_PREFIX);
SCIMMY.Resources.Group.basepath(SCIM_PREFIX);
SCIMMY.Resources.ResourceType.basepath(SCIM_PREFIX);
SCIMMY.Resources.Schema.basepath(SCIM_PREFIX);
SCIMMY.Resources.ServiceProviderConfig.basepath(SCIM_PREFIX);

/**
 * Entra ID sends booleans as strings in PATCH (`"value": "False"`) and capitalized op names;
 * RFC 7644 has neither. Normalize both before scimmy applies the operations.
 */
export function normalizePatch(body: unknown): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const ops = (body as { Operations?: unknown }).Operations;
  if (!Array.isArray(ops)) return body;
  const bool = (v: unknown) => (v === 'True' || v === 'true' ? true : v === 'False' || v === 'false' ? false : v);
  if (ops.some((o) => typeof o !== 'object' || o === null || Array.isArray(o))) {
    throw scimError(400, 'invalidSyntax', 'Each PatchOp operation must be an object');
  }
  return {
    ...body,
    Operations: ops.map((o: Record<string, unknown>) => {
      const op = typeof o.op === 'string' ? o.op.toLowerCase() : o.op;
      let value = o.value;
      if (typeof o.path === 'string' && o.path.toLowerCase() === 'active') value = bool(value);
      else if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'active' in value) {
        value = { ...value, active: bool((value as { active: unknown }).active) };
      }
      return { ...o, op, value };
    }),
  };
}

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  reply.code(status).header('content-type', SCIM_JSON).header('cache-control', 'no-store');
  return reply.send(body === undefined ? '' : JSON.stringify(body));
}

function sendError(reply: FastifyReply, e: unknown): FastifyReply {
  const msg = new SCIMMY.Messages.Error(e as Error);
  return send(reply, Number(msg.status), msg);
}

export function registerScimRoutes(app: FastifyInstance, d: ScimDeps): void {
  // SCIM clients send application/scim+json; parse it as JSON.
  app.addContentTypeParser(SCIM_JSON, { parseAs: 'string' }, app.getDefaultJsonParser('error', 'ignore'));

  /** RFC 7644 §2: a bearer token an admin created; anything else is 401 in SCIM's error shape. */
  const authenticate = async (req: FastifyRequest): Promise<ScimTokenRecord> => {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer ([A-Za-z0-9_-]{20,200})$/.exec(h);
    const token = m === null ? null : await d.store.findScimToken(sha256Hex(m[1] as string));
    if (token === null || token.revokedAt !== null) throw scimError(401, null, 'A valid SCIM bearer token is required');
    await d.store.touchScimToken(token.id, d.now());
    return token;
  };

  const resources = {
    Users: SCIMMY.Resources.User,
    Groups: SCIMMY.Resources.Group,
  } as const;
  type Name = keyof typeof resources;
  const resourceOf = (name: string): (typeof resources)[Name] => {
    const r = resources[name as Name];
    if (r === undefined) throw scimError(404, null, `No resource type at ${name}`);
    return r;
  };
  /** RFC 7644 §3.4.2.4: startIndex and count are integers; anything else is the client's error. */
  const int = (name: string, v: string) => {
    if (!/^-?\d{1,9}$/.test(v)) throw scimError(400, 'invalidValue', `${name} must be an integer`);
    return Number(v);
  };
  const listParams = (q: Record<string, string | undefined>) => ({
    ...(q.filter === undefined ? {} : { filter: q.filter }),
    ...(q.attributes === undefined ? {} : { attributes: q.attributes }),
    ...(q.excludedAttributes === undefined ? {} : { excludedAttributes: q.excludedAttributes }),
    ...(q.startIndex === undefined ? {} : { startIndex: int('startIndex', q.startIndex) }),
    ...(q.count === undefined ? {} : { count: int('count', q.count) }),
  });

  /** A resource for this request; a query scimmy cannot parse is the client's error, never a 500. */
  const construct = <R extends (typeof resources)[Name]>(R: R, id?: string, q: Record<string, string> = {}) => {
    try {
      return new R(id, listParams(q));
    } catch (e) {
      if (e instanceof SCIMMY.Types.Error) throw e;
      throw scimError(400, 'invalidFilter', 'The filter or the paging parameters could not be parsed');
    }
  };

  const handle =
    (fn: (req: FastifyRequest, reply: FastifyReply, ctx: Ctx) => Promise<FastifyReply>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      try {
        const token = await authenticate(req);
        return await fn(req, reply, { d, token, req });
      } catch (e) {
        return sendError(reply, e);
      }
    };

  app.get(
    `${SCIM_PREFIX}/ServiceProviderConfig`,
    handle(async (_req, reply) => send(reply, 200, await new SCIMMY.Resources.ServiceProviderConfig().read())),
  );
  app.get(
    `${SCIM_PREFIX}/ResourceTypes`,
    handle(async (_req, reply) => send(reply, 200, await new SCIMMY.Resources.ResourceType().read())),
  );
  app.get(
    `${SCIM_PREFIX}/ResourceTypes/:id`,
    handle(async (req, reply) =>
      send(reply, 200, await new SCIMMY.Resources.ResourceType((req.params as { id: string }).id).read()),
    ),
  );
  app.get(
    `${SCIM_PREFIX}/Schemas`,
    handle(async (_req, reply) => send(reply, 200, await new SCIMMY.Resources.Schema().read())),
  );
  app.get(
    `${SCIM_PREFIX}/Schemas/:id`,
    handle(async (req, reply) =>
      send(reply, 200, await new SCIMMY.Resources.Schema((req.params as { id: string }).id).read()),
    ),
  );

  app.get(
    `${SCIM_PREFIX}/:type`,
    handle(async (req, reply, ctx) => {
      const R = resourceOf((req.params as { type: string }).type);
      return send(reply, 200, await construct(R, undefined, req.query as Record<string, string>).read(ctx));
    }),
  );
  app.get(
    `${SCIM_PREFIX}/:type/:id`,
    handle(async (req, reply, ctx) => {
      const p = req.params as { type: string; id: string };
      const R = resourceOf(p.type);
      return send(reply, 200, await construct(R, p.id, req.query as Record<string, string>).read(ctx));
    }),
  );
  app.post(
    `${SCIM_PREFIX}/:type`,
    handle(async (req, reply, ctx) => {
      const R = resourceOf((req.params as { type: string }).type);
      const created = (await construct(R).write(req.body, ctx)) as { id?: string };
      reply.header('location', `${SCIM_PREFIX}/${(req.params as { type: string }).type}/${created.id ?? ''}`);
      return send(reply, 201, created);
    }),
  );
  app.put(
    `${SCIM_PREFIX}/:type/:id`,
    handle(async (req, reply, ctx) => {
      const p = req.params as { type: string; id: string };
      return send(reply, 200, await construct(resourceOf(p.type), p.id).write(req.body, ctx));
    }),
  );
  app.patch(
    `${SCIM_PREFIX}/:type/:id`,
    handle(async (req, reply, ctx) => {
      const p = req.params as { type: string; id: string };
      const out = await construct(resourceOf(p.type), p.id).patch(normalizePatch(req.body) as never, ctx);
      // RFC 7644 §3.5.2: 204 when nothing is returned.
      return out === undefined ? send(reply, 204, undefined) : send(reply, 200, out);
    }),
  );
  app.delete(
    `${SCIM_PREFIX}/:type/:id`,
    handle(async (req, reply, ctx) => {
      const p = req.params as { type: string; id: string };
      await construct(resourceOf(p.type), p.id).dispose(ctx);
      return reply.code(204).send();
    }),
  );
}
