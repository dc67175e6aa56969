// Workspace odds and ends: SCIM /Me (§5), secrets, and PAT minting (/api/2.0/token/create).
import { createHash, randomBytes } from 'node:crypto';
import type { SimContext } from './context.js';
import { alreadyExists, invalidParam, notFound } from './errors.js';
import { type Json, ok, optInt, optStr, type Route, str } from './http.js';
import type { SimIdentity } from './types.js';

const KEY_PATTERN = /^[\w.-]{1,128}$/;

interface Scope {
  name: string;
  owner: string;
  secrets: Map<string, { value: Buffer; last_updated_timestamp: number }>;
}

/** Stable numeric SCIM ids derived from a group name. */
const groupId = (name: string): string => String(Number.parseInt(createHash('sha256').update(`group:${name}`).digest('hex').slice(0, 12), 16));

export function scimUser(identity: SimIdentity): Json {
  const [given = '', ...family] = (identity.displayName ?? '').split(' ');
  return {
    id: identity.id,
    userName: identity.userName,
    displayName: identity.displayName ?? identity.userName,
    active: true,
    ...(identity.kind === 'user'
      ? { emails: [{ value: identity.userName, type: 'work', primary: true }], name: { givenName: given, familyName: family.join(' ') } }
      : { applicationId: identity.userName }),
    groups: (identity.groups ?? []).map((g) => ({ display: g, value: groupId(g), $ref: `Groups/${groupId(g)}`, type: 'direct' })),
    entitlements: [{ value: 'workspace-access' }],
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:workspace:2.0:User'],
  };
}

export function workspaceRoutes(ctx: SimContext): Route[] {
  const scopes = new Map<string, Scope>();
  const scope = (src: Json): Scope => {
    const name = str(src, 'scope');
    const s = scopes.get(name);
    if (!s) throw notFound(`Scope ${name} does not exist!`);
    return s;
  };
  const s = '/api/2.0/secrets';
  return [
    {
      method: 'GET',
      path: '/api/2.0/preview/scim/v2/Me',
      // SDKs learn the workspace id from this header.
      handle: (req) => ok(scimUser(req.caller.identity), { 'x-databricks-org-id': ctx.workspaceId }),
    },
    { method: 'GET', path: `${s}/scopes/list`, handle: () => ok({ scopes: [...scopes.values()].map((x) => ({ name: x.name, backend_type: 'DATABRICKS' })) }) },
    {
      method: 'POST',
      path: `${s}/scopes/create`,
      handle: (req) => {
        const name = str(req.json(), 'scope');
        if (!KEY_PATTERN.test(name)) throw invalidParam('Scope names may contain letters, digits, _ - and . (at most 128).');
        if (scopes.has(name)) throw alreadyExists(`Scope ${name} already exists!`);
        scopes.set(name, { name, owner: req.caller.identity.userName, secrets: new Map() });
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${s}/scopes/delete`,
      handle: (req) => {
        scopes.delete(scope(req.json()).name);
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${s}/put`,
      handle: (req) => {
        const body = req.json();
        const sc = scope(body);
        const key = str(body, 'key');
        if (!KEY_PATTERN.test(key)) throw invalidParam('Secret keys may contain letters, digits, _ - and . (at most 128).');
        const text = optStr(body, 'string_value');
        const bytes = optStr(body, 'bytes_value');
        if ((text === undefined) === (bytes === undefined)) throw invalidParam('Exactly one of string_value and bytes_value is required.');
        const value = text !== undefined ? Buffer.from(text, 'utf8') : Buffer.from(bytes ?? '', 'base64');
        sc.secrets.set(key, { value, last_updated_timestamp: ctx.now() });
        return ok({});
      },
    },
    {
      method: 'GET',
      path: `${s}/get`,
      handle: (req) => {
        const input = req.input();
        const key = str(input, 'key');
        const secret = scope(input).secrets.get(key);
        if (!secret) throw notFound(`Secret ${key} does not exist.`);
        return ok({ key, value: secret.value.toString('base64') });
      },
    },
    {
      method: 'GET',
      path: `${s}/list`,
      handle: (req) => ok({ secrets: [...scope(req.input()).secrets].map(([key, v]) => ({ key, last_updated_timestamp: v.last_updated_timestamp })) }),
    },
    {
      method: 'POST',
      path: `${s}/delete`,
      handle: (req) => {
        const body = req.json();
        const key = str(body, 'key');
        if (!scope(body).secrets.delete(key)) throw notFound(`Secret ${key} does not exist.`);
        return ok({});
      },
    },
    {
      method: 'POST',
      path: '/api/2.0/token/create',
      handle: (req) => {
        const body = req.json();
        const lifetime = optInt(body, 'lifetime_seconds');
        const now = ctx.now();
        // Minted PATs never expire in the simulator; expiry_time is reported for shape only.
        const token = ctx.tokens.mintPat(req.caller.identity);
        ctx.log({ msg: 'pat minted', identity: req.caller.identity.userName });
        return ok({
          token_value: token,
          token_info: {
            token_id: randomBytes(32).toString('hex'),
            creation_time: now,
            expiry_time: lifetime && lifetime > 0 ? now + lifetime * 1000 : -1,
            comment: optStr(body, 'comment') ?? '',
          },
        });
      },
    },
  ];
}
