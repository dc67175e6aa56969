// Model serving (databricks-api.md §2): endpoint management under /api/2.0, with a pending config
// that settles after `deployPolls` GETs, a per-endpoint ACL, and the data-plane invocation routes.
import { createHash, randomBytes } from 'node:crypto';
import type { Caller } from './auth.js';
import { chatCompletion } from './chat.js';
import type { SimContext } from './context.js';
import { alreadyExists, ApiError, badRequest, conflict, invalidParam, notFound, permissionDenied } from './errors.js';
import { type ApiRequest, isObject, type Json, ok, optArr, optBool, optObj, optStr, type Reply, type Route, str, tagList } from './http.js';
import { FEATURES, type IrisModel } from './model.js';
import { parseTabular } from './scoring.js';

type Level = 'CAN_VIEW' | 'CAN_QUERY' | 'CAN_MANAGE';
const LEVELS: Level[] = ['CAN_VIEW', 'CAN_QUERY', 'CAN_MANAGE'];
type PrincipalKey = 'user_name' | 'group_name' | 'service_principal_name';
const PRINCIPAL_KEYS: PrincipalKey[] = ['user_name', 'group_name', 'service_principal_name'];

interface AclEntry {
  key: PrincipalKey;
  name: string;
  level: Level;
}

interface Route100 {
  served_entity_name: string;
  traffic_percentage: number;
}

interface Config {
  served_entities: Json[];
  traffic_config: { routes: Route100[] };
}

interface Endpoint {
  id: string;
  name: string;
  creator: string;
  creation_timestamp: number;
  last_updated_timestamp: number;
  description?: string;
  /** The config that serves traffic; null until the first deployment settles. */
  config: (Config & { config_version: number }) | null;
  pending: (Config & { start_time: number; pollsLeft: number }) | null;
  tags: { key: string; value: string }[];
  ai_gateway?: Json;
  route_optimized: boolean;
  acl: AclEntry[];
  /** Calls per rate-limit bucket in the current one-minute window (AI gateway `rate_limits`). */
  usage: Map<string, { windowStart: number; calls: number }>;
}

const NAME_PATTERN = /^[A-Za-z0-9_-]{1,63}$/;
const SEED_CREATOR = 'admin@example.com';

export function servingRoutes(ctx: SimContext, iris: IrisModel): Route[] {
  const endpoints = new Map<string, Endpoint>();
  for (const seed of seedEndpoints(ctx.now())) endpoints.set(seed.name, seed);

  const byName = (name: string): Endpoint => {
    const ep = endpoints.get(name);
    if (!ep) throw notFound(`Endpoint with name '${name}' does not exist.`);
    return ep;
  };
  const byId = (id: string): Endpoint => {
    for (const ep of endpoints.values()) if (ep.id === id) return ep;
    throw notFound(`Serving endpoint with id '${id}' does not exist.`);
  };
  const requireLevel = (ep: Endpoint, caller: Caller, needed: Level, action: string): void => {
    const level = levelOf(ep, caller);
    if (!level || LEVELS.indexOf(level) < LEVELS.indexOf(needed)) {
      throw permissionDenied(`User ${caller.identity.userName} does not have ${needed} permission to ${action} endpoint '${ep.name}'.`);
    }
  };
  /** A pending config becomes live after `deployPolls` GETs of the endpoint (0 = at once). */
  const settle = (ep: Endpoint, poll: boolean): void => {
    if (!ep.pending) return;
    if (poll) ep.pending.pollsLeft -= 1;
    if (ep.pending.pollsLeft > 0) return;
    const { served_entities, traffic_config } = ep.pending;
    ep.config = { served_entities, traffic_config, config_version: (ep.config?.config_version ?? 0) + 1 };
    ep.pending = null;
    ep.last_updated_timestamp = ctx.now();
  };
  const invoke = (req: ApiRequest, ep: Endpoint, servedModel?: string): Reply => {
    requireLevel(ep, req.caller, 'CAN_QUERY', 'query');
    // Ensure a config is live: during an update the old config keeps serving.
    if (!ep.config) throw new ApiError(400, 'INVALID_STATE', `Endpoint '${ep.name}' is not ready: its first configuration is still deploying.`);
    throttle(ep, req.caller, ctx.now());
    const target = servedModel ?? primaryEntity(ep.config);
    if (!ep.config.served_entities.some((e) => e.name === target)) throw notFound(`Served model '${target}' does not exist in endpoint '${ep.name}'.`);
    const body = req.json();
    // The live config decides the model: a pending config changes nothing until it settles.
    const task = taskOf(ep.config);
    if (task === 'llm/v1/chat') return chatCompletion(ctx, ep.name, target, body);
    if (task !== undefined) throw badRequest(`The simulator does not serve task '${task}'.`);
    const rows = parseTabular(body, FEATURES);
    return ok({ predictions: iris.predict(rows) }, { 'served-model-name': target });
  };

  const api = '/api/2.0/serving-endpoints';
  return [
    { method: 'GET', path: api, handle: () => ok({ endpoints: [...endpoints.values()].map(summary) }) },
    {
      method: 'GET',
      path: `${api}/{name}`,
      handle: (req) => {
        const ep = byName(req.params.name ?? '');
        settle(ep, true);
        return ok(detailed(ep, req.caller));
      },
    },
    {
      method: 'POST',
      path: api,
      handle: (req) => {
        const body = req.json();
        const name = str(body, 'name');
        if (!NAME_PATTERN.test(name)) throw invalidParam('Endpoint names may contain only letters, digits, - and _ (at most 63).');
        if (endpoints.has(name)) throw alreadyExists(`Endpoint with name '${name}' already exists.`);
        const who = req.caller.identity;
        const config = parseConfig(optObj(body, 'config') ?? {}, who.userName, ctx.now());
        const now = ctx.now();
        const description = optStr(body, 'description');
        const ep: Endpoint = {
          id: randomBytes(16).toString('hex'),
          name,
          creator: who.userName,
          creation_timestamp: now,
          last_updated_timestamp: now,
          ...(description !== undefined ? { description } : {}),
          config: null,
          pending: { ...config, start_time: now, pollsLeft: ctx.deployPolls },
          tags: tagList(body, 'tags'),
          ...(optObj(body, 'ai_gateway') ? { ai_gateway: optObj(body, 'ai_gateway') as Json } : {}),
          route_optimized: optBool(body, 'route_optimized') ?? false,
          acl: [{ key: who.kind === 'user' ? 'user_name' : 'service_principal_name', name: who.userName, level: 'CAN_MANAGE' }],
          usage: new Map(),
        };
        endpoints.set(name, ep);
        settle(ep, false);
        return ok(detailed(ep, req.caller));
      },
    },
    {
      method: 'PUT',
      path: `${api}/{name}/config`,
      handle: (req) => {
        const ep = byName(req.params.name ?? '');
        requireLevel(ep, req.caller, 'CAN_MANAGE', 'update');
        settle(ep, false);
        if (ep.pending) throw conflict(`Endpoint '${ep.name}' already has a config update in progress.`);
        const config = parseConfig(req.json(), req.caller.identity.userName, ctx.now());
        ep.pending = { ...config, start_time: ctx.now(), pollsLeft: ctx.deployPolls };
        settle(ep, false);
        return ok(detailed(ep, req.caller));
      },
    },
    {
      method: 'DELETE',
      path: `${api}/{name}`,
      handle: (req) => {
        const ep = byName(req.params.name ?? '');
        requireLevel(ep, req.caller, 'CAN_MANAGE', 'delete');
        endpoints.delete(ep.name);
        return ok({});
      },
    },
    {
      method: 'PUT',
      path: `${api}/{name}/ai-gateway`,
      handle: (req) => {
        const ep = byName(req.params.name ?? '');
        requireLevel(ep, req.caller, 'CAN_MANAGE', 'update');
        ep.ai_gateway = req.json();
        ep.usage.clear();
        ep.last_updated_timestamp = ctx.now();
        return ok(ep.ai_gateway);
      },
    },
    {
      method: 'PATCH',
      path: `${api}/{name}/tags`,
      handle: (req) => {
        const ep = byName(req.params.name ?? '');
        requireLevel(ep, req.caller, 'CAN_MANAGE', 'update');
        const body = req.json();
        const remove = new Set((optArr(body, 'delete_tags') ?? []).map(String));
        const add = tagList(body, 'add_tags');
        const addKeys = new Set(add.map((t) => t.key));
        ep.tags = [...ep.tags.filter((t) => !remove.has(t.key) && !addKeys.has(t.key)), ...add];
        return ok({ tags: ep.tags });
      },
    },
    { method: 'GET', path: '/api/2.0/permissions/serving-endpoints/{id}', handle: (req) => ok(permissions(byId(req.params.id ?? ''))) },
    {
      method: 'GET',
      path: '/api/2.0/permissions/serving-endpoints/{id}/permissionLevels',
      handle: () => ok({ permission_levels: LEVELS.map((permission_level) => ({ permission_level, description: '' })) }),
    },
    ...(['PUT', 'PATCH'] as const).map(
      (method): Route => ({
        method,
        path: '/api/2.0/permissions/serving-endpoints/{id}',
        handle: (req) => {
          const ep = byId(req.params.id ?? '');
          requireLevel(ep, req.caller, 'CAN_MANAGE', 'change permissions of');
          const entries = parseAcl(req.json());
          // PUT replaces the direct ACL; PATCH updates or adds entries.
          const keep = method === 'PUT' ? [] : ep.acl.filter((a) => !entries.some((e) => e.key === a.key && e.name === a.name));
          ep.acl = [...keep, ...entries];
          return ok(permissions(ep));
        },
      }),
    ),
    { method: 'POST', path: '/serving-endpoints/{name}/invocations', handle: (req) => invoke(req, byName(req.params.name ?? '')) },
    {
      method: 'POST',
      path: '/serving-endpoints/{name}/served-models/{model}/invocations',
      handle: (req) => invoke(req, byName(req.params.name ?? ''), req.params.model ?? ''),
    },
    {
      // OpenAI-compatible route used by the AI SDK provider: the endpoint is named in `model`.
      method: 'POST',
      path: '/serving-endpoints/chat/completions',
      handle: (req) => {
        const ep = byName(str(req.json(), 'model'));
        if (taskOf(ep.config ?? ep.pending) !== 'llm/v1/chat') throw badRequest(`Endpoint '${ep.name}' does not serve chat completions.`);
        return invoke(req, ep);
      },
    },
  ];
}

function seedEndpoints(now: number): Endpoint[] {
  const seeded = (name: string, entity: Json): Endpoint => ({
    id: createHash('sha256').update(`endpoint:${name}`).digest('hex').slice(0, 32),
    name,
    creator: SEED_CREATOR,
    creation_timestamp: now,
    last_updated_timestamp: now,
    config: {
      served_entities: [{ ...entity, creator: SEED_CREATOR, creation_timestamp: now }],
      traffic_config: { routes: [{ served_entity_name: String(entity.name), traffic_percentage: 100 }] },
      config_version: 1,
    },
    pending: null,
    tags: [],
    route_optimized: false,
    // Everyone may use and manage the seeded endpoints until a test narrows the ACL.
    acl: [{ key: 'group_name', name: 'users', level: 'CAN_MANAGE' }],
    usage: new Map(),
  });
  return [
    seeded('iris', {
      name: 'iris-1',
      entity_name: 'main.ml.iris',
      entity_version: '1',
      workload_size: 'Small',
      workload_type: 'CPU',
      scale_to_zero_enabled: true,
    }),
    seeded('chat-llm', { name: 'chat-llm-1', external_model: { name: 'sim-chat', provider: 'custom', task: 'llm/v1/chat' } }),
  ];
}

/** Validates `{served_entities, traffic_config?}`; without a traffic config a single entity gets 100 %. */
function parseConfig(src: Json, creator: string, now: number): Config {
  const raw = optArr(src, 'served_entities');
  if (!raw || raw.length === 0) throw invalidParam("'served_entities' must list at least one entity.");
  const served_entities = raw.map((e, i): Json => {
    if (!isObject(e)) throw invalidParam(`served_entities[${i}] must be an object.`);
    const entityName = optStr(e, 'entity_name');
    const external = optObj(e, 'external_model');
    if (!entityName && !external && !optObj(e, 'foundation_model')) {
      throw invalidParam(`served_entities[${i}] needs entity_name, external_model or foundation_model.`);
    }
    const base = (entityName ?? String(external?.name ?? 'model')).split('.').pop() ?? 'model';
    const name = optStr(e, 'name') ?? `${base}-${optStr(e, 'entity_version') ?? '1'}`;
    return { ...e, name, creator, creation_timestamp: now };
  });
  const names = served_entities.map((e) => String(e.name));
  if (new Set(names).size !== names.length) throw invalidParam('Served entity names must be unique.');

  const traffic = optObj(src, 'traffic_config');
  if (!traffic) {
    if (names.length > 1) throw invalidParam("'traffic_config' is required when serving more than one entity.");
    return { served_entities, traffic_config: { routes: [{ served_entity_name: names[0] ?? '', traffic_percentage: 100 }] } };
  }
  const routes = (optArr(traffic, 'routes') ?? []).map((r, i): Route100 => {
    if (!isObject(r)) throw invalidParam(`traffic_config.routes[${i}] must be an object.`);
    const target = str(r, 'served_entity_name');
    const pct = r.traffic_percentage;
    if (!names.includes(target)) throw invalidParam(`traffic_config.routes[${i}] names unknown served entity '${target}'.`);
    if (typeof pct !== 'number' || !Number.isInteger(pct) || pct < 0 || pct > 100) {
      throw invalidParam(`traffic_config.routes[${i}].traffic_percentage must be an integer 0-100.`);
    }
    return { served_entity_name: target, traffic_percentage: pct };
  });
  if (routes.reduce((s, r) => s + r.traffic_percentage, 0) !== 100) throw invalidParam('Traffic percentages must add up to 100.');
  return { served_entities, traffic_config: { routes } };
}

/** The task follows the served entity: an external model's task, chat for foundation models, none for custom models. */
function taskOf(config: Config | null): string | undefined {
  const first = config?.served_entities[0] ?? {};
  const ext = isObject(first.external_model) ? first.external_model : undefined;
  if (typeof ext?.task === 'string') return ext.task;
  if (isObject(first.foundation_model)) return 'llm/v1/chat';
  return undefined;
}

/** Traffic is not split at random: the route with the largest share serves every request (deterministic tests). */
function primaryEntity(config: Config): string {
  const routes = [...config.traffic_config.routes].sort((a, b) => b.traffic_percentage - a.traffic_percentage);
  return routes[0]?.served_entity_name ?? String(config.served_entities[0]?.name ?? '');
}

/**
 * Enforces AI gateway `rate_limits` ([{calls, key: 'user'|'endpoint', renewal_period: 'minute'}]) with a
 * fixed one-minute window; over the limit is 429 REQUEST_LIMIT_EXCEEDED with Retry-After: 1 (§8).
 */
function throttle(ep: Endpoint, caller: Caller, now: number): void {
  const limits = Array.isArray(ep.ai_gateway?.rate_limits) ? ep.ai_gateway.rate_limits : [];
  const counted: string[] = [];
  for (const limit of limits) {
    if (!isObject(limit) || typeof limit.calls !== 'number') continue;
    const key = limit.key === 'user' ? `user:${caller.identity.userName}` : 'endpoint';
    let bucket = ep.usage.get(key);
    if (!bucket || now - bucket.windowStart >= 60_000) {
      bucket = { windowStart: now, calls: 0 };
      ep.usage.set(key, bucket);
    }
    if (bucket.calls >= limit.calls) {
      throw new ApiError(429, 'REQUEST_LIMIT_EXCEEDED', `Exceeded the rate limit of ${limit.calls} calls per minute for endpoint '${ep.name}'.`, {
        'retry-after': '1',
      });
    }
    counted.push(key);
  }
  // Count the call only once every limit has admitted it.
  for (const key of counted) {
    const bucket = ep.usage.get(key);
    if (bucket) bucket.calls += 1;
  }
}

function levelOf(ep: Endpoint, caller: Caller): Level | null {
  const who = caller.identity;
  const groups = new Set([...(who.groups ?? []), 'users']);
  if (groups.has('admins')) return 'CAN_MANAGE';
  let best = -1;
  for (const a of ep.acl) {
    const matches =
      (a.key === 'group_name' && groups.has(a.name)) ||
      (a.key === 'user_name' && who.kind === 'user' && a.name === who.userName) ||
      (a.key === 'service_principal_name' && who.kind === 'service_principal' && a.name === who.userName);
    if (matches) best = Math.max(best, LEVELS.indexOf(a.level));
  }
  return LEVELS[best] ?? null;
}

function parseAcl(body: Json): AclEntry[] {
  const list = optArr(body, 'access_control_list');
  if (!list) throw invalidParam("Missing required field: access_control_list");
  return list.map((e, i) => {
    if (!isObject(e)) throw invalidParam(`access_control_list[${i}] must be an object.`);
    const keys = PRINCIPAL_KEYS.filter((k) => typeof e[k] === 'string');
    const key = keys[0];
    if (keys.length !== 1 || !key) throw invalidParam(`access_control_list[${i}] must name exactly one user_name, group_name or service_principal_name.`);
    const level = e.permission_level;
    if (!LEVELS.includes(level as Level)) throw invalidParam(`access_control_list[${i}].permission_level must be one of ${LEVELS.join(', ')}.`);
    return { key, name: e[key] as string, level: level as Level };
  });
}

function permissions(ep: Endpoint): Json {
  return {
    object_id: `/serving-endpoints/${ep.id}`,
    object_type: 'serving-endpoint',
    access_control_list: [
      ...ep.acl.map((a) => ({ [a.key]: a.name, all_permissions: [{ permission_level: a.level, inherited: false }] })),
      {
        group_name: 'admins',
        all_permissions: [{ permission_level: 'CAN_MANAGE', inherited: true, inherited_from_object: ['/serving-endpoints/'] }],
      },
    ],
  };
}

function state(ep: Endpoint): Json {
  return { ready: ep.config ? 'READY' : 'NOT_READY', config_update: ep.pending ? 'IN_PROGRESS' : 'NOT_UPDATING' };
}

/** The list item (`ServingEndpoint`). */
function summary(ep: Endpoint): Json {
  const entities = ep.config?.served_entities ?? ep.pending?.served_entities ?? [];
  const task = taskOf(ep.config ?? ep.pending);
  return {
    name: ep.name,
    id: ep.id,
    creator: ep.creator,
    creation_timestamp: ep.creation_timestamp,
    last_updated_timestamp: ep.last_updated_timestamp,
    state: state(ep),
    config: {
      served_entities: entities.map((e) => pick(e, ['name', 'entity_name', 'entity_version', 'external_model', 'foundation_model'])),
    },
    ...(task ? { task } : {}),
    tags: ep.tags,
    ...(ep.ai_gateway ? { ai_gateway: ep.ai_gateway } : {}),
  };
}

/** The detailed form (`ServingEndpointDetailed`). */
function detailed(ep: Endpoint, caller: Caller): Json {
  const withState = (entities: Json[], deployment: string): Json[] =>
    entities.map((e) => ({ ...e, state: { deployment, deployment_state_message: '' } }));
  const level = levelOf(ep, caller);
  return {
    ...summary(ep),
    ...(ep.description !== undefined ? { description: ep.description } : {}),
    ...(ep.config
      ? {
          config: {
            served_entities: withState(ep.config.served_entities, 'DEPLOYMENT_READY'),
            traffic_config: ep.config.traffic_config,
            config_version: ep.config.config_version,
          },
        }
      : { config: undefined }),
    ...(ep.pending
      ? {
          pending_config: {
            served_entities: withState(ep.pending.served_entities, 'DEPLOYMENT_CREATING'),
            traffic_config: ep.pending.traffic_config,
            start_time: ep.pending.start_time,
            config_version: (ep.config?.config_version ?? 0) + 1,
          },
        }
      : {}),
    ...(level ? { permission_level: level } : {}),
    route_optimized: ep.route_optimized,
  };
}

function pick(src: Json, keys: string[]): Json {
  return Object.fromEntries(keys.filter((k) => src[k] !== undefined).map((k) => [k, src[k]]));
}

