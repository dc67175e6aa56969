// MLflow tracking and registry routes, including the seeded main.ml.iris model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PAT, demoSimOptions, type Simulator, startSimulator } from '../index.js';
import { call } from './helpers.js';

let sim: Simulator;
const api = (method: string, path: string, body?: unknown) =>
  call(sim, method, `/api/2.0/mlflow/${path}`, { token: DEMO_PAT, ...(body !== undefined ? { body } : {}) });

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions());
});
afterAll(() => sim.close());

describe('experiments', () => {
  it('creates, gets by id and name, searches, and refuses duplicates', async () => {
    const created = await api('POST', 'experiments/create', { name: '/Users/alice/exp', tags: [{ key: 'team', value: 'ml' }] });
    const id = String(created.body.experiment_id);
    expect(id).toMatch(/^\d+$/);
    const got = await api('GET', `experiments/get?experiment_id=${id}`);
    expect(got.body.experiment).toMatchObject({ experiment_id: id, name: '/Users/alice/exp', lifecycle_stage: 'active', tags: [{ key: 'team', value: 'ml' }] });
    const byName = await api('GET', `experiments/get-by-name?experiment_name=${encodeURIComponent('/Users/alice/exp')}`);
    expect((byName.body.experiment as { experiment_id: string }).experiment_id).toBe(id);
    const search = await api('POST', 'experiments/search', { filter: "name LIKE '/Users/%'", max_results: 10 });
    expect((search.body.experiments as { name: string }[]).map((e) => e.name)).toEqual(['/Users/alice/exp']);
    const dup = await api('POST', 'experiments/create', { name: '/Users/alice/exp' });
    expect([dup.status, dup.body.error_code]).toEqual([409, 'RESOURCE_ALREADY_EXISTS']);
    expect((await api('GET', 'experiments/get?experiment_id=999999')).body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
    expect((await api('GET', 'experiments/get')).body.error_code).toBe('INVALID_PARAMETER_VALUE');
  });
});

describe('runs', () => {
  it('creates a run, logs metrics, params and tags, updates and searches it', async () => {
    const exp = String((await api('POST', 'experiments/create', { name: 'runs-exp' })).body.experiment_id);
    const created = await api('POST', 'runs/create', { experiment_id: exp, run_name: 'r1', start_time: 1000 });
    const info = (created.body.run as { info: Record<string, unknown> }).info;
    expect(info).toMatchObject({ experiment_id: exp, run_name: 'r1', status: 'RUNNING', user_id: 'alice@example.com', start_time: 1000 });
    const runId = String(info.run_id);

    expect((await api('POST', 'runs/log-metric', { run_id: runId, key: 'loss', value: 0.9, timestamp: 1, step: 0 })).status).toBe(200);
    await api('POST', 'runs/log-metric', { run_id: runId, key: 'loss', value: 0.5, timestamp: 2, step: 1 });
    await api('POST', 'runs/log-parameter', { run_id: runId, key: 'lr', value: '0.1' });
    await api('POST', 'runs/set-tag', { run_id: runId, key: 'stage', value: 'dev' });
    await api('POST', 'runs/log-batch', { run_id: runId, metrics: [{ key: 'acc', value: 0.97, timestamp: 3, step: 1 }], params: [{ key: 'epochs', value: '5' }], tags: [{ key: 'k', value: 'v' }] });
    const changed = await api('POST', 'runs/log-parameter', { run_id: runId, key: 'lr', value: '0.2' });
    expect([changed.status, changed.body.error_code]).toEqual([400, 'INVALID_PARAMETER_VALUE']);

    const updated = await api('POST', 'runs/update', { run_id: runId, status: 'FINISHED', end_time: 5000 });
    expect(updated.body.run_info).toMatchObject({ status: 'FINISHED', end_time: 5000 });
    expect((await api('POST', 'runs/update', { run_id: runId, status: 'DONE' })).status).toBe(400);

    const got = await api('GET', `runs/get?run_id=${runId}`);
    const data = (got.body.run as { data: Record<string, { key: string; value: unknown }[]> }).data;
    expect(data.metrics).toEqual(expect.arrayContaining([{ key: 'loss', value: 0.5, timestamp: 2, step: 1 }, { key: 'acc', value: 0.97, timestamp: 3, step: 1 }]));
    expect(data.metrics).toHaveLength(2);
    expect(data.params).toEqual([{ key: 'lr', value: '0.1' }, { key: 'epochs', value: '5' }]);
    expect(data.tags).toEqual(expect.arrayContaining([{ key: 'stage', value: 'dev' }, { key: 'k', value: 'v' }, { key: 'mlflow.runName', value: 'r1' }]));

    await api('POST', 'runs/create', { experiment_id: exp, run_name: 'r2' });
    const search = await api('POST', 'runs/search', { experiment_ids: [exp], filter: "metrics.acc > 0.9 AND params.lr = '0.1'" });
    expect((search.body.runs as { info: { run_id: string } }[]).map((r) => r.info.run_id)).toEqual([runId]);
    const all = await api('POST', 'runs/search', { experiment_ids: [exp], max_results: 1 });
    expect(all.body.runs).toHaveLength(1);
    expect(all.body.next_page_token).toBe('1');
    expect((await api('POST', 'runs/search', { experiment_ids: [exp], filter: 'metrics.acc ~ 1' })).body.error_code).toBe('INVALID_PARAMETER_VALUE');
    expect((await api('GET', 'runs/get?run_id=nope')).status).toBe(404);
  });
});

describe('model registry', () => {
  it('serves the seeded main.ml.iris with versions 1 and 2 on every search path', async () => {
    for (const path of ['registered-models/search?max_results=100', 'registered-models/list', 'unity-catalog/registered-models/search']) {
      const r = await api('GET', path);
      expect(r.status).toBe(200);
      const iris = (r.body.registered_models as Record<string, unknown>[]).find((m) => m.name === 'main.ml.iris');
      expect(iris).toMatchObject({ latest_versions: [{ name: 'main.ml.iris', version: '2', status: 'READY', current_stage: 'None' }] });
    }
    const versions = await api('GET', `model-versions/search?filter=${encodeURIComponent("name='main.ml.iris'")}`);
    expect((versions.body.model_versions as { version: string; run_id: string }[]).map((v) => v.version)).toEqual(['1', '2']);
    const v1 = await api('GET', 'unity-catalog/model-versions/get?name=main.ml.iris&version=1');
    expect(v1.body.model_version).toMatchObject({ version: '1', aliases: ['champion'], source: expect.stringContaining('dbfs:/databricks/mlflow-tracking/') });
    const run = await api('GET', `runs/get?run_id=${(v1.body.model_version as { run_id: string }).run_id}`);
    const metrics = (run.body.run as { data: { metrics: { key: string; value: number }[] } }).data.metrics;
    expect(metrics[0]?.key).toBe('training_accuracy');
    expect(metrics[0]?.value).toBeGreaterThanOrEqual(0.9);
  });

  it('creates models and versions, transitions stages, manages aliases, deletes', async () => {
    const created = await api('POST', 'registered-models/create', { name: 'fraud', description: 'd' });
    expect(created.body.registered_model).toMatchObject({ name: 'fraud', description: 'd', latest_versions: [] });
    expect((await api('POST', 'registered-models/create', { name: 'fraud' })).body.error_code).toBe('RESOURCE_ALREADY_EXISTS');
    for (const n of ['1', '2']) {
      const v = await api('POST', 'model-versions/create', { name: 'fraud', source: `dbfs:/m/${n}`, run_id: `run${n}` });
      expect(v.body.model_version).toMatchObject({ name: 'fraud', version: n, status: 'READY', current_stage: 'None' });
    }
    const t1 = await api('POST', 'model-versions/transition-stage', { name: 'fraud', version: '1', stage: 'Production', archive_existing_versions: false });
    expect(t1.body.model_version).toMatchObject({ version: '1', current_stage: 'Production' });
    const t2 = await api('POST', 'databricks/model-versions/transition-stage', { name: 'fraud', version: '2', stage: 'production', archive_existing_versions: true });
    expect(t2.body.model_version_databricks).toMatchObject({ version: '2', current_stage: 'Production' });
    expect((await api('GET', 'model-versions/get?name=fraud&version=1')).body.model_version).toMatchObject({ current_stage: 'Archived' });
    expect((await api('POST', 'model-versions/transition-stage', { name: 'fraud', version: '1', stage: 'Prod' })).status).toBe(400);

    const db = await api('GET', 'databricks/registered-models/get?name=fraud');
    expect(db.body.registered_model_databricks).toMatchObject({ name: 'fraud', id: expect.any(String), permission_level: 'CAN_MANAGE' });

    expect((await api('POST', 'registered-models/alias', { name: 'fraud', alias: 'champion', version: '2' })).status).toBe(200);
    expect((await api('GET', 'registered-models/alias?name=fraud&alias=champion')).body.model_version).toMatchObject({ version: '2', aliases: ['champion'] });
    expect((await api('GET', 'registered-models/get?name=fraud')).body.registered_model).toMatchObject({ aliases: [{ alias: 'champion', version: '2' }] });
    expect((await api('DELETE', 'registered-models/alias?name=fraud&alias=champion')).status).toBe(200);
    expect((await api('GET', 'registered-models/alias?name=fraud&alias=champion')).status).toBe(404);
    expect((await api('POST', 'registered-models/alias', { name: 'fraud', alias: 'x', version: '9' })).status).toBe(404);

    expect((await api('DELETE', 'registered-models/delete', { name: 'fraud' })).status).toBe(200);
    expect((await api('GET', 'registered-models/get?name=fraud')).body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });
});
