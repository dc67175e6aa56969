// Serving endpoints: management state machine, ACL, and invocations of the real iris model and the chat model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PAT, demoSimOptions, type Simulator, type SimIdentity, startSimulator } from '../index.js';
import { call, IRIS_COLUMNS, SETOSA_ROW, VIRGINICA_ROW } from './helpers.js';

const CAROL: SimIdentity = { id: '1003', userName: 'carol@example.com', kind: 'user', groups: ['analysts'] };
const CAROL_PAT = 'dapic0000000000000000000000000000000';
const IRIS_V2 = {
  served_entities: [{ name: 'iris-2', entity_name: 'main.ml.iris', entity_version: '2', workload_size: 'Small', scale_to_zero_enabled: true }],
  traffic_config: { routes: [{ served_entity_name: 'iris-2', traffic_percentage: 100 }] },
};

let sim: Simulator;
const as = (token: string) => (method: string, path: string, body?: unknown) => call(sim, method, path, { token, ...(body !== undefined ? { body } : {}) });
const alice = as(DEMO_PAT);
const carol = as(CAROL_PAT);

beforeAll(async () => {
  const demo = demoSimOptions();
  sim = await startSimulator({ ...demo, pats: { ...demo.pats, [CAROL_PAT]: CAROL } });
});
afterAll(() => sim.close());

describe('serving endpoint management', () => {
  it('lists the seeded iris and chat-llm endpoints', async () => {
    const r = await alice('GET', '/api/2.0/serving-endpoints');
    expect(r.status).toBe(200);
    const endpoints = r.body.endpoints as Record<string, unknown>[];
    expect(endpoints.map((e) => e.name)).toEqual(['iris', 'chat-llm']);
    expect(endpoints[0]).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      state: { ready: 'READY', config_update: 'NOT_UPDATING' },
      config: { served_entities: [{ name: 'iris-1', entity_name: 'main.ml.iris', entity_version: '1' }] },
      tags: [],
    });
    expect(endpoints[1]).toMatchObject({ task: 'llm/v1/chat' });
  });

  it('gets the detailed form, and 404 RESOURCE_DOES_NOT_EXIST for an unknown name', async () => {
    const r = await alice('GET', '/api/2.0/serving-endpoints/iris');
    expect(r.body).toMatchObject({
      name: 'iris',
      config: {
        config_version: 1,
        served_entities: [{ name: 'iris-1', state: { deployment: 'DEPLOYMENT_READY' } }],
        traffic_config: { routes: [{ served_entity_name: 'iris-1', traffic_percentage: 100 }] },
      },
      permission_level: 'CAN_MANAGE',
      route_optimized: false,
    });
    const missing = await alice('GET', '/api/2.0/serving-endpoints/nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error_code: 'RESOURCE_DOES_NOT_EXIST', message: "Endpoint with name 'nope' does not exist." });
  });

  it('deploys a new config: IN_PROGRESS with pending_config, 409 on a second PUT, settles after deployPolls GETs', async () => {
    const put = await alice('PUT', '/api/2.0/serving-endpoints/iris/config', IRIS_V2);
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      name: 'iris',
      state: { ready: 'READY', config_update: 'IN_PROGRESS' },
      config: { config_version: 1, served_entities: [{ name: 'iris-1' }] },
      pending_config: { config_version: 2, served_entities: [{ name: 'iris-2', state: { deployment: 'DEPLOYMENT_CREATING' } }], start_time: expect.any(Number) },
    });
    // The old config keeps serving during the update.
    const during = await alice('POST', '/serving-endpoints/iris/invocations', { instances: [SETOSA_ROW] });
    expect(during.headers.get('served-model-name')).toBe('iris-1');

    const again = await alice('PUT', '/api/2.0/serving-endpoints/iris/config', IRIS_V2);
    expect(again.status).toBe(409);
    expect(again.body.error_code).toBe('RESOURCE_CONFLICT');

    const poll1 = await alice('GET', '/api/2.0/serving-endpoints/iris');
    expect((poll1.body.state as Record<string, string>).config_update).toBe('IN_PROGRESS');
    const poll2 = await alice('GET', '/api/2.0/serving-endpoints/iris');
    expect(poll2.body).toMatchObject({ state: { ready: 'READY', config_update: 'NOT_UPDATING' }, config: { config_version: 2, served_entities: [{ name: 'iris-2' }] } });
    expect(poll2.body.pending_config).toBeUndefined();
    const after = await alice('POST', '/serving-endpoints/iris/invocations', { instances: [SETOSA_ROW] });
    expect(after.headers.get('served-model-name')).toBe('iris-2');
  });

  it('creates an endpoint NOT_READY, refuses a duplicate, settles, then deletes it', async () => {
    const body = { name: 'iris-canary', config: { served_entities: [{ entity_name: 'main.ml.iris', entity_version: '2' }] }, tags: [{ key: 'team', value: 'ml' }] };
    const created = await alice('POST', '/api/2.0/serving-endpoints', body);
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      name: 'iris-canary',
      creator: 'alice@example.com',
      state: { ready: 'NOT_READY', config_update: 'IN_PROGRESS' },
      pending_config: { served_entities: [{ name: 'iris-2', entity_name: 'main.ml.iris' }], traffic_config: { routes: [{ served_entity_name: 'iris-2', traffic_percentage: 100 }] } },
      tags: [{ key: 'team', value: 'ml' }],
    });
    const dup = await alice('POST', '/api/2.0/serving-endpoints', body);
    expect([dup.status, dup.body.error_code]).toEqual([409, 'RESOURCE_ALREADY_EXISTS']);

    const notReady = await alice('POST', '/serving-endpoints/iris-canary/invocations', { instances: [SETOSA_ROW] });
    expect([notReady.status, notReady.body.error_code]).toEqual([400, 'INVALID_STATE']);

    await alice('GET', '/api/2.0/serving-endpoints/iris-canary');
    const settled = await alice('GET', '/api/2.0/serving-endpoints/iris-canary');
    expect(settled.body).toMatchObject({ state: { ready: 'READY', config_update: 'NOT_UPDATING' }, config: { config_version: 1 } });
    expect((await alice('POST', '/serving-endpoints/iris-canary/invocations', { instances: [SETOSA_ROW] })).body).toEqual({ predictions: ['setosa'] });

    expect((await alice('DELETE', '/api/2.0/serving-endpoints/iris-canary')).status).toBe(200);
    expect((await alice('GET', '/api/2.0/serving-endpoints/iris-canary')).status).toBe(404);
    expect((await alice('POST', '/serving-endpoints/iris-canary/invocations', { instances: [SETOSA_ROW] })).status).toBe(404);
  });

  it('keeps serving the old model (and task) until a config that changes the task settles', async () => {
    const chatEntity = { name: 'llm-1', external_model: { name: 'sim-chat', provider: 'custom', task: 'llm/v1/chat' } };
    await alice('POST', '/api/2.0/serving-endpoints', { name: 'swap', config: { served_entities: [chatEntity] } });
    await alice('GET', '/api/2.0/serving-endpoints/swap');
    await alice('GET', '/api/2.0/serving-endpoints/swap');
    const chat = { messages: [{ role: 'user', content: 'hi' }] };
    expect((await alice('POST', '/serving-endpoints/swap/invocations', chat)).body.object).toBe('chat.completion');

    await alice('PUT', '/api/2.0/serving-endpoints/swap/config', { served_entities: [{ entity_name: 'main.ml.iris', entity_version: '1' }] });
    expect((await alice('POST', '/serving-endpoints/swap/invocations', chat)).body.object).toBe('chat.completion');
    await alice('GET', '/api/2.0/serving-endpoints/swap');
    const settled = await alice('GET', '/api/2.0/serving-endpoints/swap');
    expect(settled.body.task).toBeUndefined();
    expect((await alice('POST', '/serving-endpoints/swap/invocations', chat)).status).toBe(400);
    expect((await alice('POST', '/serving-endpoints/swap/invocations', { instances: [VIRGINICA_ROW] })).body).toEqual({ predictions: ['virginica'] });
  });

  it('validates create and config bodies with INVALID_PARAMETER_VALUE', async () => {
    const cases: unknown[] = [
      { name: 'bad name!', config: IRIS_V2 },
      { name: 'x1', config: { served_entities: [] } },
      { name: 'x2', config: { served_entities: [{ name: 'a' }] } },
      { name: 'x3', config: { ...IRIS_V2, traffic_config: { routes: [{ served_entity_name: 'iris-2', traffic_percentage: 50 }] } } },
      { name: 'x4', config: { ...IRIS_V2, traffic_config: { routes: [{ served_entity_name: 'ghost', traffic_percentage: 100 }] } } },
    ];
    for (const body of cases) {
      const r = await alice('POST', '/api/2.0/serving-endpoints', body);
      expect([r.status, r.body.error_code]).toEqual([400, 'INVALID_PARAMETER_VALUE']);
    }
  });

  it('sets tags and the AI gateway config', async () => {
    const tags = await alice('PATCH', '/api/2.0/serving-endpoints/chat-llm/tags', { add_tags: [{ key: 'env', value: 'dev' }, { key: 'owner', value: 'a' }] });
    expect(tags.body).toEqual({ tags: [{ key: 'env', value: 'dev' }, { key: 'owner', value: 'a' }] });
    const removed = await alice('PATCH', '/api/2.0/serving-endpoints/chat-llm/tags', { delete_tags: ['owner'], add_tags: [{ key: 'env', value: 'prod' }] });
    expect(removed.body).toEqual({ tags: [{ key: 'env', value: 'prod' }] });
    const gw = { usage_tracking_config: { enabled: true }, rate_limits: [{ calls: 10, key: 'user', renewal_period: 'minute' }] };
    expect((await alice('PUT', '/api/2.0/serving-endpoints/chat-llm/ai-gateway', gw)).body).toEqual(gw);
    expect((await alice('GET', '/api/2.0/serving-endpoints/chat-llm')).body).toMatchObject({ ai_gateway: gw, tags: [{ key: 'env', value: 'prod' }] });
  });

  it('enforces the endpoint ACL: CAN_QUERY to invoke, CAN_MANAGE to change permissions', async () => {
    const created = await alice('POST', '/api/2.0/serving-endpoints', { name: 'private-iris', config: { served_entities: [{ entity_name: 'main.ml.iris', entity_version: '1' }] } });
    const id = String(created.body.id);
    await alice('GET', '/api/2.0/serving-endpoints/private-iris');
    await alice('GET', '/api/2.0/serving-endpoints/private-iris');

    const denied = await carol('POST', '/serving-endpoints/private-iris/invocations', { instances: [SETOSA_ROW] });
    expect(denied.status).toBe(403);
    expect(denied.body.error_code).toBe('PERMISSION_DENIED');
    const notManager = await carol('PATCH', `/api/2.0/permissions/serving-endpoints/${id}`, { access_control_list: [{ user_name: CAROL.userName, permission_level: 'CAN_MANAGE' }] });
    expect(notManager.status).toBe(403);

    const granted = await alice('PATCH', `/api/2.0/permissions/serving-endpoints/${id}`, { access_control_list: [{ group_name: 'analysts', permission_level: 'CAN_QUERY' }] });
    expect(granted.body).toMatchObject({ object_id: `/serving-endpoints/${id}`, object_type: 'serving-endpoint' });
    const acl = (await alice('GET', `/api/2.0/permissions/serving-endpoints/${id}`)).body.access_control_list;
    expect(acl).toEqual(
      expect.arrayContaining([
        { user_name: 'alice@example.com', all_permissions: [{ permission_level: 'CAN_MANAGE', inherited: false }] },
        { group_name: 'analysts', all_permissions: [{ permission_level: 'CAN_QUERY', inherited: false }] },
      ]),
    );
    expect((await carol('POST', '/serving-endpoints/private-iris/invocations', { instances: [SETOSA_ROW] })).status).toBe(200);
    expect((await carol('GET', '/api/2.0/serving-endpoints/private-iris')).body.permission_level).toBe('CAN_QUERY');

    // PUT replaces the direct ACL: carol's group loses access again.
    await alice('PUT', `/api/2.0/permissions/serving-endpoints/${id}`, { access_control_list: [{ user_name: 'alice@example.com', permission_level: 'CAN_MANAGE' }] });
    expect((await carol('POST', '/serving-endpoints/private-iris/invocations', { instances: [SETOSA_ROW] })).status).toBe(403);

    const bad = await alice('PUT', `/api/2.0/permissions/serving-endpoints/${id}`, { access_control_list: [{ user_name: 'x', permission_level: 'CAN_FLY' }] });
    expect([bad.status, bad.body.error_code]).toEqual([400, 'INVALID_PARAMETER_VALUE']);
    expect((await alice('GET', '/api/2.0/permissions/serving-endpoints/0000')).status).toBe(404);
  });
});

describe('throttling', () => {
  it('enforces AI gateway rate limits per user with 429 REQUEST_LIMIT_EXCEEDED and Retry-After: 1', async () => {
    await alice('PUT', '/api/2.0/serving-endpoints/iris/ai-gateway', { rate_limits: [{ calls: 2, key: 'user', renewal_period: 'minute' }] });
    const body = { instances: [SETOSA_ROW] };
    expect((await alice('POST', '/serving-endpoints/iris/invocations', body)).status).toBe(200);
    expect((await alice('POST', '/serving-endpoints/iris/invocations', body)).status).toBe(200);
    const limited = await alice('POST', '/serving-endpoints/iris/invocations', body);
    expect(limited.status).toBe(429);
    expect(limited.body.error_code).toBe('REQUEST_LIMIT_EXCEEDED');
    expect(limited.headers.get('retry-after')).toBe('1');
    // Another user has their own bucket; clearing the gateway config lifts the limit.
    expect((await carol('POST', '/serving-endpoints/iris/invocations', body)).status).toBe(200);
    await alice('PUT', '/api/2.0/serving-endpoints/iris/ai-gateway', {});
    expect((await alice('POST', '/serving-endpoints/iris/invocations', body)).status).toBe(200);
  });
});

describe('iris invocations', () => {
  const invoke = (body: unknown) => alice('POST', '/serving-endpoints/iris/invocations', body);

  it('accepts dataframe_split, dataframe_records, instances and inputs, and predicts class labels', async () => {
    const bodies = [
      { dataframe_split: { columns: IRIS_COLUMNS, data: [SETOSA_ROW, VIRGINICA_ROW] } },
      { dataframe_records: [Object.fromEntries(IRIS_COLUMNS.map((c, i) => [c, SETOSA_ROW[i]])), Object.fromEntries(IRIS_COLUMNS.map((c, i) => [c, VIRGINICA_ROW[i]]))] },
      { instances: [SETOSA_ROW, VIRGINICA_ROW] },
      { inputs: Object.fromEntries(IRIS_COLUMNS.map((c, i) => [c, [SETOSA_ROW[i], VIRGINICA_ROW[i]]])), params: { note: 'x' } },
      { inputs: [SETOSA_ROW, VIRGINICA_ROW] },
    ];
    for (const body of bodies) {
      const r = await invoke(body);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ predictions: ['setosa', 'virginica'] });
      expect(r.headers.get('served-model-name')).toMatch(/^iris-\d$/);
    }
  });

  it('accepts sklearn-style column names in any order', async () => {
    const r = await invoke({ dataframe_split: { columns: ['petal width (cm)', 'petal length (cm)', 'sepal width (cm)', 'sepal length (cm)'], data: [[2.5, 6.0, 3.3, 6.3]] } });
    expect(r.body).toEqual({ predictions: ['virginica'] });
  });

  it('400 BAD_REQUEST unless exactly one input format key is present', async () => {
    for (const body of [{}, { params: {} }, { instances: [SETOSA_ROW], inputs: [SETOSA_ROW] }]) {
      const r = await invoke(body);
      expect([r.status, r.body.error_code]).toEqual([400, 'BAD_REQUEST']);
    }
  });

  it('400 INVALID_PARAMETER_VALUE for missing or non-numeric columns, naming the column', async () => {
    const missing = await invoke({ dataframe_split: { columns: ['sepal_length', 'sepal_width'], data: [[5.1, 3.5]] } });
    expect([missing.status, missing.body.error_code]).toEqual([400, 'INVALID_PARAMETER_VALUE']);
    expect(missing.body.message).toContain("'petal_length'");
    const text = await invoke({ dataframe_records: [{ sepal_length: 5.1, sepal_width: 'wide', petal_length: 1.4, petal_width: 0.2 }] });
    expect([text.status, text.body.error_code]).toEqual([400, 'INVALID_PARAMETER_VALUE']);
    expect(text.body.message).toContain("'sepal_width'");
    const short = await invoke({ instances: [[1, 2, 3]] });
    expect(short.status).toBe(400);
  });

  it('404 for an unknown endpoint and a bad chat request on the tabular model', async () => {
    expect((await alice('POST', '/serving-endpoints/ghost/invocations', { instances: [SETOSA_ROW] })).body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
    const r = await alice('POST', '/serving-endpoints/chat/completions', { model: 'iris', messages: [{ role: 'user', content: 'hi' }] });
    expect([r.status, r.body.error_code]).toEqual([400, 'BAD_REQUEST']);
  });
});

describe('chat-llm invocations', () => {
  it('answers a chat completion deterministically from the last user message', async () => {
    const r = await alice('POST', '/serving-endpoints/chat-llm/invocations', {
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 64,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      id: expect.stringMatching(/^chatcmpl-/),
      object: 'chat.completion',
      created: expect.any(Number),
      model: 'chat-llm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from chat-llm! You said: Hi' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 },
    });
  });

  it('accepts content as an array of text parts, and truncates at max_tokens with finish_reason length', async () => {
    const r = await alice('POST', '/serving-endpoints/chat/completions', {
      model: 'chat-llm',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'tell ' }, { type: 'text', text: 'me' }] }],
      max_tokens: 2,
    });
    expect(r.body).toMatchObject({ choices: [{ message: { content: 'Hello from ' }, finish_reason: 'length' }], usage: { completion_tokens: 2 } });
  });

  it('rejects malformed chat requests with 400', async () => {
    for (const body of [{}, { messages: [] }, { messages: [{ role: 'robot', content: 'x' }] }, { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, { messages: [{ role: 'system', content: 'no user' }] }, { messages: [{ role: 'user', content: 'x' }], temperature: 9 }]) {
      const r = await alice('POST', '/serving-endpoints/chat-llm/invocations', body);
      expect(r.status).toBe(400);
      expect(['BAD_REQUEST', 'INVALID_PARAMETER_VALUE']).toContain(r.body.error_code);
    }
  });

  it('streams chat.completion.chunk events, a final chunk with usage, then [DONE]', async () => {
    const r = await alice('POST', '/serving-endpoints/chat-llm/invocations', { messages: [{ role: 'user', content: 'stream please' }], stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const events = r.text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      return JSON.parse(e.slice(6)) as { id: string; object: string; created: number; model: string; choices: { index: number; delta: { content?: string; role?: string }; finish_reason: string | null }[]; usage?: unknown };
    });
    for (const c of chunks) {
      expect(c).toMatchObject({ id: chunks[0]?.id, object: 'chat.completion.chunk', created: expect.any(Number), model: 'chat-llm' });
      expect(c.choices[0]?.index).toBe(0);
    }
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello from chat-llm! You said: stream please');
    const last = chunks.at(-1);
    expect(last?.choices[0]?.finish_reason).toBe('stop');
    expect(last?.usage).toEqual({ prompt_tokens: 2, completion_tokens: 7, total_tokens: 9 });
    expect(chunks.slice(0, -1).every((c) => c.choices[0]?.finish_reason === null)).toBe(true);
  });

  it('decides streaming from the body flag, not from Accept', async () => {
    const r = await call(sim, 'POST', '/serving-endpoints/chat-llm/invocations', {
      token: DEMO_PAT,
      headers: { accept: 'text/event-stream' },
      body: { messages: [{ role: 'user', content: 'x' }] },
    });
    expect(r.headers.get('content-type')).toContain('application/json');
  });
});

describe('stream timing', () => {
  it('flushes each SSE event: the first arrives well before the last', async () => {
    const slow = await startSimulator(demoSimOptions({ streamChunkDelayMs: 30 }));
    try {
      const res = await fetch(`${slow.url}/serving-endpoints/chat-llm/invocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEMO_PAT}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'a b c d' }], stream: true }),
      });
      const started = Date.now();
      const arrivals: number[] = [];
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const piece = decoder.decode(chunk, { stream: true });
        text += piece;
        for (const _ of piece.matchAll(/data: /g)) arrivals.push(Date.now() - started);
      }
      // "Hello from chat-llm! You said: a b c d" is 9 words: 9 content chunks + final + [DONE] = 11 events, 10 gaps of 30 ms.
      expect(text.match(/data: /g)).toHaveLength(11);
      expect(arrivals).toHaveLength(11);
      expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThanOrEqual(250);
      expect(arrivals[0]).toBeLessThan(100);
    } finally {
      await slow.close();
    }
  });
});
