// Jobs (2.1 and 2.2 routed alike) and clusters (databricks-api.md §4). A run is RUNNING until it
// has been fetched `runPolls` times, then TERMINATED/SUCCESS. Seeded: job 11 "retrain-iris".
import type { SimContext } from './context.js';
import { invalidParam, notFound } from './errors.js';
import { type ApiRequest, type Json, ok, optBool, optInt, optObj, optStr, paginate, type Route, int, str } from './http.js';

interface Job {
  job_id: number;
  creator_user_name: string;
  created_time: number;
  settings: Json;
}

interface Run {
  job_id?: number;
  run_id: number;
  number_in_job: number;
  run_name: string;
  creator_user_name: string;
  start_time: number;
  end_time?: number;
  pollsLeft: number;
  result?: 'SUCCESS' | 'CANCELED';
  job_parameters?: Json;
  tasks: Json[];
}

export function jobsRoutes(ctx: SimContext): Route[] {
  const jobs = new Map<number, Job>();
  const runs = new Map<number, Run>();
  let nextJobId = 1000;
  let nextRunId = 901;

  jobs.set(11, {
    job_id: 11,
    creator_user_name: 'admin@example.com',
    created_time: ctx.now(),
    settings: {
      name: 'retrain-iris',
      tasks: [{ task_key: 'train', notebook_task: { notebook_path: '/Shared/retrain-iris' }, existing_cluster_id: '0123-456789-abc' }],
      parameters: [{ name: 'model', default: 'main.ml.iris' }],
      max_concurrent_runs: 1,
      format: 'MULTI_TASK',
    },
  });

  const job = (src: Json): Job => {
    const id = int(src, 'job_id');
    const j = jobs.get(id);
    if (!j) throw invalidParam(`Job ${id} does not exist.`);
    return j;
  };
  const startRun = (req: ApiRequest, name: string, tasks: Json[], j?: Job, params?: Json): Run => {
    const id = nextRunId++;
    const r: Run = {
      run_id: id,
      number_in_job: id,
      run_name: name,
      creator_user_name: req.caller.identity.userName,
      start_time: ctx.now(),
      pollsLeft: ctx.runPolls,
      tasks,
      ...(j ? { job_id: j.job_id } : {}),
      ...(params ? { job_parameters: params } : {}),
    };
    runs.set(id, r);
    return r;
  };
  const runOut = (r: Run): Json => {
    const done = r.result !== undefined;
    const life = done ? 'TERMINATED' : 'RUNNING';
    const state = { life_cycle_state: life, ...(done ? { result_state: r.result } : {}), state_message: '', user_cancelled_or_timedout: r.result === 'CANCELED' };
    const status = {
      state: life,
      ...(done ? { termination_details: { code: r.result, type: r.result === 'SUCCESS' ? 'SUCCESS' : 'CLIENT_ERROR', message: '' } } : {}),
    };
    const { pollsLeft: _, result: __, tasks, job_parameters, ...rest } = r;
    return {
      ...rest,
      state,
      status,
      run_page_url: `${ctx.url}/#job/${r.job_id ?? 0}/run/${r.run_id}`,
      tasks: tasks.map((t, i) => ({ ...t, run_id: r.run_id * 100 + i, state })),
      ...(job_parameters ? { job_parameters: Object.entries(job_parameters).map(([name, value]) => ({ name, value })) } : {}),
    };
  };
  const settingsOf = (body: Json, key: string): Json => {
    const s = optObj(body, key);
    if (!s) throw invalidParam(`Missing required field: ${key}`);
    return s;
  };

  const routes: Route[] = [];
  for (const v of ['2.1', '2.2']) {
    const p = `/api/${v}/jobs`;
    routes.push(
      {
        method: 'GET',
        path: `${p}/list`,
        handle: (req) => {
          const input = req.input();
          const name = optStr(input, 'name');
          const all = [...jobs.values()].filter((j) => !name || j.settings.name === name).sort((a, b) => a.job_id - b.job_id);
          const offset = optInt(input, 'offset');
          const { page, next } = paginate(all, offset !== undefined ? { ...input, page_token: String(offset) } : input, 'limit', 20);
          return ok({ jobs: page, has_more: next !== undefined, ...(next ? { next_page_token: next } : {}) });
        },
      },
      { method: 'GET', path: `${p}/get`, handle: (req) => ok(job(req.input())) },
      {
        method: 'POST',
        path: `${p}/create`,
        handle: (req) => {
          const body = req.json();
          str(body, 'name');
          const id = nextJobId++;
          jobs.set(id, { job_id: id, creator_user_name: req.caller.identity.userName, created_time: ctx.now(), settings: body });
          return ok({ job_id: id });
        },
      },
      {
        method: 'POST',
        path: `${p}/reset`,
        handle: (req) => {
          const body = req.json();
          job(body).settings = settingsOf(body, 'new_settings');
          return ok({});
        },
      },
      {
        method: 'POST',
        path: `${p}/update`,
        handle: (req) => {
          const body = req.json();
          const j = job(body);
          const merged: Json = { ...j.settings, ...(optObj(body, 'new_settings') ?? {}) };
          for (const field of Array.isArray(body.fields_to_remove) ? body.fields_to_remove : []) delete merged[String(field)];
          j.settings = merged;
          return ok({});
        },
      },
      {
        method: 'POST',
        path: `${p}/delete`,
        handle: (req) => {
          jobs.delete(job(req.json()).job_id);
          return ok({});
        },
      },
      {
        method: 'POST',
        path: `${p}/run-now`,
        handle: (req) => {
          const body = req.json();
          const j = job(body);
          const tasks = Array.isArray(j.settings.tasks) ? (j.settings.tasks as Json[]) : [];
          const r = startRun(req, String(j.settings.name ?? `job-${j.job_id}`), tasks, j, optObj(body, 'job_parameters'));
          return ok({ run_id: r.run_id, number_in_job: r.number_in_job });
        },
      },
      {
        method: 'POST',
        path: `${p}/runs/submit`,
        handle: (req) => {
          const body = req.json();
          const tasks = Array.isArray(body.tasks) ? (body.tasks as Json[]) : [];
          const r = startRun(req, optStr(body, 'run_name') ?? 'Untitled', tasks);
          return ok({ run_id: r.run_id });
        },
      },
      {
        method: 'GET',
        path: `${p}/runs/get`,
        handle: (req) => {
          const id = int(req.input(), 'run_id');
          const r = runs.get(id);
          if (!r) throw notFound(`Run ${id} does not exist.`);
          if (r.result === undefined && --r.pollsLeft <= 0) {
            r.result = 'SUCCESS';
            r.end_time = ctx.now();
          }
          return ok(runOut(r));
        },
      },
      {
        method: 'POST',
        path: `${p}/runs/cancel`,
        handle: (req) => {
          const id = int(req.json(), 'run_id');
          const r = runs.get(id);
          if (!r) throw notFound(`Run ${id} does not exist.`);
          if (r.result === undefined) Object.assign(r, { result: 'CANCELED', end_time: ctx.now() });
          return ok({});
        },
      },
      {
        method: 'GET',
        path: `${p}/runs/list`,
        handle: (req) => {
          const input = req.input();
          const jobId = optInt(input, 'job_id');
          const active = optBool(input, 'active_only') ?? false;
          const completed = optBool(input, 'completed_only') ?? false;
          const all = [...runs.values()]
            .filter((r) => jobId === undefined || r.job_id === jobId)
            .filter((r) => (!active || r.result === undefined) && (!completed || r.result !== undefined))
            .sort((a, b) => b.run_id - a.run_id);
          const offset = optInt(input, 'offset');
          const { page, next } = paginate(all, offset !== undefined ? { ...input, page_token: String(offset) } : input, 'limit', 25);
          return ok({ runs: page.map(runOut), has_more: next !== undefined, ...(next ? { next_page_token: next } : {}) });
        },
      },
    );
  }

  const clusters = {
    clusters: [
      {
        cluster_id: '0123-456789-abc',
        cluster_name: 'ml',
        spark_version: '15.4.x-cpu-ml-scala2.12',
        node_type_id: 'i3.xlarge',
        num_workers: 2,
        state: 'RUNNING',
        creator_user_name: 'admin@example.com',
      },
    ],
  };
  for (const v of ['2.0', '2.1']) routes.push({ method: 'GET', path: `/api/${v}/clusters/list`, handle: () => ok(clusters) });
  return routes;
}
