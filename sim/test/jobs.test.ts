// Jobs (2.1 and 2.2) and clusters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PAT, demoSimOptions, type Simulator, startSimulator } from '../index.js';
import { call } from './helpers.js';

let sim: Simulator;
const api = (method: string, path: string, body?: unknown) => call(sim, method, path, { token: DEMO_PAT, ...(body !== undefined ? { body } : {}) });

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions({ runPolls: 2 }));
});
afterAll(() => sim.close());

describe('jobs', () => {
  it.each(['2.1', '2.2'])('lists the seeded retrain-iris job under /api/%s', async (v) => {
    const r = await api('GET', `/api/${v}/jobs/list`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ jobs: [{ job_id: 11, settings: { name: 'retrain-iris' }, creator_user_name: 'admin@example.com', created_time: expect.any(Number) }], has_more: false });
  });

  it('run-now progresses RUNNING -> TERMINATED/SUCCESS after runPolls GETs', async () => {
    const started = await api('POST', '/api/2.1/jobs/run-now', { job_id: 11, job_parameters: { model: 'main.ml.iris' } });
    expect(started.body).toEqual({ run_id: expect.any(Number), number_in_job: expect.any(Number) });
    const runId = started.body.run_id as number;
    const first = await api('GET', `/api/2.1/jobs/runs/get?run_id=${runId}`);
    expect(first.body).toMatchObject({
      job_id: 11,
      run_id: runId,
      creator_user_name: 'alice@example.com',
      state: { life_cycle_state: 'RUNNING', state_message: '' },
      status: { state: 'RUNNING' },
      run_page_url: `${sim.url}/#job/11/run/${runId}`,
      job_parameters: [{ name: 'model', value: 'main.ml.iris' }],
    });
    expect((first.body.state as Record<string, unknown>).result_state).toBeUndefined();
    const second = await api('GET', `/api/2.2/jobs/runs/get?run_id=${runId}`);
    expect(second.body).toMatchObject({
      state: { life_cycle_state: 'TERMINATED', result_state: 'SUCCESS' },
      status: { state: 'TERMINATED', termination_details: { code: 'SUCCESS', type: 'SUCCESS', message: '' } },
      end_time: expect.any(Number),
    });
    const list = await api('GET', '/api/2.1/jobs/runs/list?job_id=11&completed_only=true');
    expect((list.body.runs as { run_id: number }[]).map((r) => r.run_id)).toContain(runId);
  });

  it('creates, gets, updates, resets and deletes a job; submits a one-time run', async () => {
    const created = await api('POST', '/api/2.2/jobs/create', { name: 'nightly', tasks: [{ task_key: 't' }], max_concurrent_runs: 1 });
    const jobId = created.body.job_id as number;
    expect((await api('GET', `/api/2.2/jobs/get?job_id=${jobId}`)).body).toMatchObject({ job_id: jobId, creator_user_name: 'alice@example.com', settings: { name: 'nightly' } });
    await api('POST', '/api/2.2/jobs/update', { job_id: jobId, new_settings: { timeout_seconds: 60 }, fields_to_remove: ['max_concurrent_runs'] });
    const updated = (await api('GET', `/api/2.2/jobs/get?job_id=${jobId}`)).body.settings as Record<string, unknown>;
    expect(updated).toMatchObject({ name: 'nightly', timeout_seconds: 60 });
    expect(updated.max_concurrent_runs).toBeUndefined();
    await api('POST', '/api/2.2/jobs/reset', { job_id: jobId, new_settings: { name: 'renamed' } });
    expect((await api('GET', `/api/2.2/jobs/get?job_id=${jobId}`)).body.settings).toEqual({ name: 'renamed' });
    const byName = await api('GET', '/api/2.2/jobs/list?name=renamed');
    expect((byName.body.jobs as { job_id: number }[]).map((j) => j.job_id)).toEqual([jobId]);
    expect((await api('POST', '/api/2.2/jobs/delete', { job_id: jobId })).status).toBe(200);
    const gone = await api('GET', `/api/2.2/jobs/get?job_id=${jobId}`);
    expect([gone.status, gone.body.error_code]).toEqual([400, 'INVALID_PARAMETER_VALUE']);

    const submitted = await api('POST', '/api/2.1/jobs/runs/submit', { run_name: 'adhoc', tasks: [{ task_key: 'a' }] });
    const run = await api('GET', `/api/2.1/jobs/runs/get?run_id=${submitted.body.run_id as number}`);
    expect(run.body).toMatchObject({ run_name: 'adhoc', tasks: [{ task_key: 'a', state: { life_cycle_state: 'RUNNING' } }] });
    expect((await api('GET', '/api/2.1/jobs/runs/get?run_id=424242')).status).toBe(404);
    expect((await api('POST', '/api/2.1/jobs/run-now', { job_id: 'eleven' })).status).toBe(400);
  });
});

describe('clusters', () => {
  it.each(['2.0', '2.1'])('lists the ml cluster under /api/%s', async (v) => {
    const r = await api('GET', `/api/${v}/clusters/list`);
    expect(r.body).toEqual({ clusters: [expect.objectContaining({ cluster_id: '0123-456789-abc', cluster_name: 'ml', state: 'RUNNING', spark_version: '15.4.x-cpu-ml-scala2.12' })] });
  });
});
