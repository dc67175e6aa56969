// MLflow tracking and model registry (databricks-api.md §3), all under /api/2.0/mlflow.
// Seeded: experiment 100 "/Shared/iris" with two finished runs, and model main.ml.iris v1 and v2.
import { createHash, randomBytes } from 'node:crypto';
import type { SimContext } from './context.js';
import { alreadyExists, invalidParam, notFound } from './errors.js';
import { compileFilter } from './filter.js';
import { type ApiRequest, isObject, type Json, ok, optArr, optInt, optNum, optStr, paginate, type Route, str, tagList } from './http.js';
import type { IrisModel } from './model.js';

interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: 'active';
  creation_time: number;
  last_update_time: number;
  tags: Map<string, string>;
}

const RUN_STATUSES = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];

interface Run {
  run_id: string;
  run_name: string;
  experiment_id: string;
  user_id: string;
  status: string;
  start_time: number;
  end_time?: number;
  params: Map<string, string>;
  tags: Map<string, string>;
  /** Full history; the run shows the latest value per key. */
  metrics: { key: string; value: number; timestamp: number; step: number }[];
}

const STAGES = ['None', 'Staging', 'Production', 'Archived'];

interface ModelVersion {
  name: string;
  version: string;
  creation_timestamp: number;
  last_updated_timestamp: number;
  current_stage: string;
  source: string;
  run_id: string;
  description: string;
  user_id: string;
  tags: Map<string, string>;
}

interface RegisteredModel {
  id: string;
  name: string;
  creation_timestamp: number;
  last_updated_timestamp: number;
  description: string;
  user_id: string;
  tags: Map<string, string>;
  aliases: Map<string, string>;
  versions: ModelVersion[];
}

const tagsOut = (m: Map<string, string>): { key: string; value: string }[] => [...m].map(([key, value]) => ({ key, value }));

export function mlflowRoutes(ctx: SimContext, iris: IrisModel): Route[] {
  const experiments = new Map<string, Experiment>();
  const runs = new Map<string, Run>();
  const models = new Map<string, RegisteredModel>();
  let nextExperimentId = 100;

  // --- state helpers -------------------------------------------------------------------------
  const createExperiment = (name: string, artifactLocation?: string, tags: { key: string; value: string }[] = []): Experiment => {
    if ([...experiments.values()].some((e) => e.name === name)) throw alreadyExists(`Experiment '${name}' already exists.`);
    const id = String(nextExperimentId++);
    const now = ctx.now();
    const exp: Experiment = {
      experiment_id: id,
      name,
      artifact_location: artifactLocation ?? `dbfs:/databricks/mlflow-tracking/${id}`,
      lifecycle_stage: 'active',
      creation_time: now,
      last_update_time: now,
      tags: new Map(tags.map((t) => [t.key, t.value])),
    };
    experiments.set(id, exp);
    return exp;
  };
  const experiment = (id: string): Experiment => {
    const e = experiments.get(id);
    if (!e) throw notFound(`No Experiment with id=${id} exists.`);
    return e;
  };
  const createRun = (experimentId: string, userId: string, runName?: string, startTime?: number, id?: string): Run => {
    experiment(experimentId);
    const run: Run = {
      run_id: id ?? randomBytes(16).toString('hex'),
      run_name: runName ?? `run-${runs.size + 1}`,
      experiment_id: experimentId,
      user_id: userId,
      status: 'RUNNING',
      start_time: startTime ?? ctx.now(),
      params: new Map(),
      tags: new Map(),
      metrics: [],
    };
    run.tags.set('mlflow.runName', run.run_name);
    runs.set(run.run_id, run);
    return run;
  };
  const run = (src: Json): Run => {
    const id = optStr(src, 'run_id') ?? str(src, 'run_uuid');
    const r = runs.get(id);
    if (!r) throw notFound(`Run '${id}' not found.`);
    return r;
  };
  const logParam = (r: Run, key: string, value: string): void => {
    // MLflow params are immutable once logged.
    const old = r.params.get(key);
    if (old !== undefined && old !== value) throw invalidParam(`Changing param values is not allowed. Param with key='${key}' was already logged with value='${old}'.`);
    r.params.set(key, value);
  };
  const logMetric = (r: Run, m: Json): void => {
    const value = optNum(m, 'value');
    if (value === undefined) throw invalidParam('Missing required field: value');
    r.metrics.push({ key: str(m, 'key'), value, timestamp: optInt(m, 'timestamp') ?? ctx.now(), step: optInt(m, 'step') ?? 0 });
  };
  const model = (name: string): RegisteredModel => {
    const m = models.get(name);
    if (!m) throw notFound(`Registered Model with name=${name} not found.`);
    return m;
  };
  const createModel = (name: string, userId: string, description = '', tags: { key: string; value: string }[] = []): RegisteredModel => {
    if (models.has(name)) throw alreadyExists(`Registered Model (name=${name}) already exists.`);
    const now = ctx.now();
    const m: RegisteredModel = {
      id: createHash('sha256').update(`model:${name}`).digest('hex').slice(0, 32),
      name,
      creation_timestamp: now,
      last_updated_timestamp: now,
      description,
      user_id: userId,
      tags: new Map(tags.map((t) => [t.key, t.value])),
      aliases: new Map(),
      versions: [],
    };
    models.set(name, m);
    return m;
  };
  const createVersion = (m: RegisteredModel, source: string, runId: string, userId: string, description = ''): ModelVersion => {
    const now = ctx.now();
    const v: ModelVersion = {
      name: m.name,
      version: String(m.versions.length + 1),
      creation_timestamp: now,
      last_updated_timestamp: now,
      current_stage: 'None',
      source,
      run_id: runId,
      description,
      user_id: userId,
      tags: new Map(),
    };
    m.versions.push(v);
    m.last_updated_timestamp = now;
    return v;
  };
  const version = (src: Json): ModelVersion => {
    const m = model(str(src, 'name'));
    const v = m.versions.find((x) => x.version === str(src, 'version'));
    if (!v) throw notFound(`Model Version (name=${m.name}, version=${String(src.version)}) not found.`);
    return v;
  };

  // --- JSON views ----------------------------------------------------------------------------
  const experimentOut = (e: Experiment): Json => ({ ...e, tags: tagsOut(e.tags) });
  const runOut = (r: Run): Json => {
    const latest = new Map<string, Run['metrics'][number]>();
    for (const m of r.metrics) {
      const prev = latest.get(m.key);
      if (!prev || m.step > prev.step || (m.step === prev.step && m.timestamp >= prev.timestamp)) latest.set(m.key, m);
    }
    return {
      info: {
        run_id: r.run_id,
        run_uuid: r.run_id,
        run_name: r.run_name,
        experiment_id: r.experiment_id,
        user_id: r.user_id,
        status: r.status,
        start_time: r.start_time,
        ...(r.end_time !== undefined ? { end_time: r.end_time } : {}),
        artifact_uri: `dbfs:/databricks/mlflow-tracking/${r.experiment_id}/${r.run_id}/artifacts`,
        lifecycle_stage: 'active',
      },
      data: { metrics: [...latest.values()], params: tagsOut(r.params), tags: tagsOut(r.tags) },
      inputs: {},
    };
  };
  const versionOut = (v: ModelVersion): Json => {
    const aliases = [...(models.get(v.name)?.aliases ?? [])].filter(([, ver]) => ver === v.version).map(([a]) => a);
    return { ...v, status: 'READY', status_message: '', tags: tagsOut(v.tags), aliases };
  };
  const modelOut = (m: RegisteredModel): Json => {
    // latest_versions: the newest version in each stage.
    const latest = STAGES.map((s) => m.versions.filter((v) => v.current_stage === s).at(-1)).filter((v) => v !== undefined);
    return {
      name: m.name,
      creation_timestamp: m.creation_timestamp,
      last_updated_timestamp: m.last_updated_timestamp,
      description: m.description,
      user_id: m.user_id,
      tags: tagsOut(m.tags),
      aliases: [...m.aliases].map(([alias, v]) => ({ alias, version: v })),
      latest_versions: latest.map(versionOut),
    };
  };

  // --- handlers shared by several paths -------------------------------------------------------
  const searchModels = (req: ApiRequest): Json => {
    const input = req.input();
    const match = compileFilter(optStr(input, 'filter'), (k) => k === 'name');
    const all = [...models.values()].filter((m) => match(() => m.name)).sort((a, b) => a.name.localeCompare(b.name));
    const { page, next } = paginate(all, input, 'max_results', 100);
    return { registered_models: page.map(modelOut), ...(next ? { next_page_token: next } : {}) };
  };
  const searchVersions = (req: ApiRequest): Json => {
    const input = req.input();
    const match = compileFilter(optStr(input, 'filter'), (k) => ['name', 'run_id', 'source', 'version'].includes(k));
    const all = [...models.values()].flatMap((m) => m.versions).filter((v) => match((k) => (v as unknown as Record<string, string>)[k]));
    const { page, next } = paginate(all, input, 'max_results', 200_000);
    return { model_versions: page.map(versionOut), ...(next ? { next_page_token: next } : {}) };
  };
  const getModel = (req: ApiRequest): Json => ({ registered_model: modelOut(model(str(req.input(), 'name'))) });
  const getVersion = (req: ApiRequest): Json => ({ model_version: versionOut(version(req.input())) });
  const transition = (req: ApiRequest): ModelVersion => {
    const body = req.json();
    const v = version(body);
    const wanted = str(body, 'stage');
    const stage = STAGES.find((s) => s.toLowerCase() === wanted.toLowerCase());
    if (!stage) throw invalidParam(`Invalid stage '${wanted}'; expected one of ${STAGES.join(', ')}.`);
    const now = ctx.now();
    if (body.archive_existing_versions === true && (stage === 'Staging' || stage === 'Production')) {
      for (const other of model(v.name).versions) {
        if (other !== v && other.current_stage === stage) Object.assign(other, { current_stage: 'Archived', last_updated_timestamp: now });
      }
    }
    Object.assign(v, { current_stage: stage, last_updated_timestamp: now });
    return v;
  };

  // --- seed -----------------------------------------------------------------------------------
  const seedUser = 'admin@example.com';
  const seedExp = createExperiment('/Shared/iris');
  const model_ = createModel('main.ml.iris', seedUser, 'Logistic regression on the Iris data set.');
  for (const n of [1, 2]) {
    const r = createRun(seedExp.experiment_id, seedUser, `iris-train-${n}`, undefined, createHash('sha256').update(`iris-run-${n}`).digest('hex').slice(0, 32));
    logParam(r, 'epochs', '500');
    logParam(r, 'learning_rate', '0.5');
    logMetric(r, { key: 'training_accuracy', value: iris.trainingAccuracy });
    Object.assign(r, { status: 'FINISHED', end_time: r.start_time });
    createVersion(model_, `dbfs:/databricks/mlflow-tracking/${seedExp.experiment_id}/${r.run_id}/artifacts/model`, r.run_id, seedUser);
  }
  model_.aliases.set('champion', '1');
  model_.aliases.set('challenger', '2');

  // --- routes ---------------------------------------------------------------------------------
  const p = '/api/2.0/mlflow';
  const searchExperiments = (req: ApiRequest): Json => {
    const input = req.input();
    const match = compileFilter(optStr(input, 'filter'), (k) => k === 'name' || k.startsWith('tags.'));
    const all = [...experiments.values()].filter((e) => match((k) => (k === 'name' ? e.name : e.tags.get(k.slice(5)))));
    const { page, next } = paginate(all, input, 'max_results', 1000);
    return { experiments: page.map(experimentOut), ...(next ? { next_page_token: next } : {}) };
  };
  return [
    {
      method: 'POST',
      path: `${p}/experiments/create`,
      handle: (req) => {
        const body = req.json();
        const e = createExperiment(str(body, 'name'), optStr(body, 'artifact_location'), tagList(body, 'tags'));
        return ok({ experiment_id: e.experiment_id });
      },
    },
    { method: 'GET', path: `${p}/experiments/get`, handle: (req) => ok({ experiment: experimentOut(experiment(str(req.input(), 'experiment_id'))) }) },
    {
      method: 'GET',
      path: `${p}/experiments/get-by-name`,
      handle: (req) => {
        const name = str(req.input(), 'experiment_name');
        const e = [...experiments.values()].find((x) => x.name === name);
        if (!e) throw notFound(`Could not find experiment with name '${name}'.`);
        return ok({ experiment: experimentOut(e) });
      },
    },
    { method: 'POST', path: `${p}/experiments/search`, handle: (req) => ok(searchExperiments(req)) },
    { method: 'GET', path: `${p}/experiments/search`, handle: (req) => ok(searchExperiments(req)) },
    {
      method: 'POST',
      path: `${p}/runs/create`,
      handle: (req) => {
        const body = req.json();
        const tags = tagList(body, 'tags');
        const runName = optStr(body, 'run_name') ?? tags.find((t) => t.key === 'mlflow.runName')?.value;
        const r = createRun(str(body, 'experiment_id'), req.caller.identity.userName, runName, optInt(body, 'start_time'));
        for (const t of tags) r.tags.set(t.key, t.value);
        return ok({ run: runOut(r) });
      },
    },
    { method: 'GET', path: `${p}/runs/get`, handle: (req) => ok({ run: runOut(run(req.input())) }) },
    {
      method: 'POST',
      path: `${p}/runs/log-metric`,
      handle: (req) => {
        const body = req.json();
        logMetric(run(body), body);
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${p}/runs/log-parameter`,
      handle: (req) => {
        const body = req.json();
        logParam(run(body), str(body, 'key'), optStr(body, 'value') ?? '');
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${p}/runs/set-tag`,
      handle: (req) => {
        const body = req.json();
        run(body).tags.set(str(body, 'key'), optStr(body, 'value') ?? '');
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${p}/runs/log-batch`,
      handle: (req) => {
        const body = req.json();
        const r = run(body);
        const entries = (key: string): Json[] =>
          (optArr(body, key) ?? []).map((e) => {
            if (!isObject(e)) throw invalidParam(`Entries of '${key}' must be objects.`);
            return e;
          });
        for (const m of entries('metrics')) logMetric(r, m);
        for (const e of entries('params')) logParam(r, str(e, 'key'), optStr(e, 'value') ?? '');
        for (const t of entries('tags')) r.tags.set(str(t, 'key'), optStr(t, 'value') ?? '');
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${p}/runs/update`,
      handle: (req) => {
        const body = req.json();
        const r = run(body);
        const status = optStr(body, 'status');
        if (status !== undefined) {
          if (!RUN_STATUSES.includes(status)) throw invalidParam(`Invalid run status '${status}'.`);
          r.status = status;
        }
        const endTime = optInt(body, 'end_time');
        if (endTime !== undefined) r.end_time = endTime;
        const name = optStr(body, 'run_name');
        if (name) {
          r.run_name = name;
          r.tags.set('mlflow.runName', name);
        }
        return ok({ run_info: runOut(r).info });
      },
    },
    {
      method: 'POST',
      path: `${p}/runs/search`,
      handle: (req) => {
        const body = req.json();
        const ids = (optArr(body, 'experiment_ids') ?? []).map(String);
        const match = compileFilter(optStr(body, 'filter'), (k) => /^(metrics|params|tags|attributes)\.|^(status|run_name|run_id)$/.test(k));
        const all = [...runs.values()]
          .filter((r) => ids.length === 0 || ids.includes(r.experiment_id))
          .filter((r) => match((k) => runField(r, k)))
          .sort((a, b) => b.start_time - a.start_time);
        const { page, next } = paginate(all, body, 'max_results', 1000);
        return ok({ runs: page.map(runOut), ...(next ? { next_page_token: next } : {}) });
      },
    },
    {
      method: 'POST',
      path: `${p}/registered-models/create`,
      handle: (req) => {
        const body = req.json();
        const m = createModel(str(body, 'name'), req.caller.identity.userName, optStr(body, 'description') ?? '', tagList(body, 'tags'));
        return ok({ registered_model: modelOut(m) });
      },
    },
    { method: 'GET', path: `${p}/registered-models/get`, handle: (req) => ok(getModel(req)) },
    {
      method: 'GET',
      path: `${p}/databricks/registered-models/get`,
      handle: (req) => {
        const m = model(str(req.input(), 'name'));
        return ok({ registered_model_databricks: { ...modelOut(m), id: m.id, permission_level: 'CAN_MANAGE' } });
      },
    },
    { method: 'GET', path: `${p}/registered-models/list`, handle: (req) => ok(searchModels(req)) },
    { method: 'GET', path: `${p}/registered-models/search`, handle: (req) => ok(searchModels(req)) },
    {
      method: 'DELETE',
      path: `${p}/registered-models/delete`,
      handle: (req) => {
        models.delete(model(str(req.input(), 'name')).name);
        return ok({});
      },
    },
    {
      method: 'POST',
      path: `${p}/registered-models/alias`,
      handle: (req) => {
        const body = req.json();
        const v = version(body);
        model(v.name).aliases.set(str(body, 'alias'), v.version);
        return ok({});
      },
    },
    {
      method: 'DELETE',
      path: `${p}/registered-models/alias`,
      handle: (req) => {
        const input = req.input();
        const m = model(str(input, 'name'));
        const alias = str(input, 'alias');
        if (!m.aliases.delete(alias)) throw notFound(`Alias '${alias}' not found for model '${m.name}'.`);
        return ok({});
      },
    },
    {
      method: 'GET',
      path: `${p}/registered-models/alias`,
      handle: (req) => {
        const input = req.input();
        const m = model(str(input, 'name'));
        const alias = str(input, 'alias');
        const v = m.versions.find((x) => x.version === m.aliases.get(alias));
        if (!v) throw notFound(`Alias '${alias}' not found for model '${m.name}'.`);
        return ok({ model_version: versionOut(v) });
      },
    },
    {
      method: 'POST',
      path: `${p}/model-versions/create`,
      handle: (req) => {
        const body = req.json();
        const v = createVersion(model(str(body, 'name')), str(body, 'source'), optStr(body, 'run_id') ?? '', req.caller.identity.userName, optStr(body, 'description') ?? '');
        return ok({ model_version: versionOut(v) });
      },
    },
    { method: 'GET', path: `${p}/model-versions/get`, handle: (req) => ok(getVersion(req)) },
    { method: 'GET', path: `${p}/model-versions/search`, handle: (req) => ok(searchVersions(req)) },
    { method: 'POST', path: `${p}/model-versions/transition-stage`, handle: (req) => ok({ model_version: versionOut(transition(req)) }) },
    {
      method: 'POST',
      path: `${p}/databricks/model-versions/transition-stage`,
      handle: (req) => ok({ model_version_databricks: { ...versionOut(transition(req)), permission_level: 'CAN_MANAGE' } }),
    },
    // Unity Catalog registry paths share the same store (UC has no stages; aliases work the same).
    { method: 'GET', path: `${p}/unity-catalog/registered-models/search`, handle: (req) => ok(searchModels(req)) },
    { method: 'GET', path: `${p}/unity-catalog/registered-models/get`, handle: (req) => ok(getModel(req)) },
    { method: 'GET', path: `${p}/unity-catalog/model-versions/search`, handle: (req) => ok(searchVersions(req)) },
    { method: 'GET', path: `${p}/unity-catalog/model-versions/get`, handle: (req) => ok(getVersion(req)) },
  ];
}

function runField(r: Run, key: string): string | number | undefined {
  const [scope, ...rest] = key.split('.');
  const name = rest.join('.');
  if (scope === 'metrics') return r.metrics.filter((m) => m.key === name).at(-1)?.value;
  if (scope === 'params') return r.params.get(name);
  if (scope === 'tags') return r.tags.get(name);
  const attr = scope === 'attributes' ? name : key;
  if (attr === 'status') return r.status;
  if (attr === 'run_name') return r.run_name;
  if (attr === 'run_id') return r.run_id;
  if (attr === 'start_time') return r.start_time;
  return undefined;
}
