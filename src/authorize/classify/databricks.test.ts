import { describe, expect, it } from 'vitest';
import type { Action } from '../actions.js';
import { DatabricksClassifier, matchSegments } from './databricks.js';
import type { ClassifyResult } from './types.js';

const classifier = new DatabricksClassifier();

/** `action Type::id`, or `action Type::<field>` for a route that names its resource in the body. */
function show(r: ClassifyResult): string {
  if ('needsBody' in r) {
    // A resource the query names may be carried along for a request without a body.
    const q = 'query' in r.needsBody ? r.needsBody.query : undefined;
    if (typeof q === 'string') return show(r.needsBody.resolve(q));
    const c = r.needsBody.resolve('<body>');
    return `${c.action} ${c.resource.type}::<${r.needsBody.field}>`;
  }
  return `${r.action} ${r.resource.type}::${r.resource.id}`;
}

function classify(method: string, target: string): string {
  const q = target.indexOf('?');
  return show(classifier.classify(method, q === -1 ? target : target.slice(0, q), q === -1 ? '' : target.slice(q)));
}

const W = 'Workspace::workspace';

describe('Databricks preset: one case per route class', () => {
  const cases: [string, string, string][] = [
    // serving:invoke
    ['POST', '/serving-endpoints/iris/invocations', 'serving:invoke Endpoint::iris'],
    ['POST', '/serving-endpoints/iris/served-models/iris-2/invocations', 'serving:invoke Endpoint::iris'],
    ['POST', '/serving-endpoints/chat/completions', 'serving:invoke Endpoint::<model>'],
    ['POST', '/serving-endpoints/completions', 'serving:invoke Endpoint::<model>'],
    ['POST', '/serving-endpoints/embeddings', 'serving:invoke Endpoint::<model>'],
    ['POST', '/serving-endpoints/responses', 'serving:invoke Endpoint::<model>'],
    ['GET', '/serving-endpoints/iris/invocations', `workspace:other ${W}`],
    ['POST', '/serving-endpoints/iris', `workspace:other ${W}`],
    // serving:read
    ['GET', '/api/2.0/serving-endpoints', `serving:read ${W}`],
    ['GET', '/api/2.0/serving-endpoints/iris', 'serving:read Endpoint::iris'],
    ['HEAD', '/api/2.0/serving-endpoints/iris/openapi', 'serving:read Endpoint::iris'],
    ['GET', '/api/2.0/permissions/serving-endpoints/ep-1', 'serving:read Endpoint::ep-1'],
    ['GET', '/api/2.0/permissions/serving-endpoints/ep-1/permissionLevels', 'serving:read Endpoint::ep-1'],
    // serving:manage
    ['POST', '/api/2.0/serving-endpoints', `serving:manage ${W}`],
    ['PUT', '/api/2.0/serving-endpoints/iris/config', 'serving:manage Endpoint::iris'],
    ['PUT', '/api/2.0/serving-endpoints/iris/ai-gateway', 'serving:manage Endpoint::iris'],
    ['PUT', '/api/2.0/serving-endpoints/iris/rate-limits', 'serving:manage Endpoint::iris'],
    ['DELETE', '/api/2.0/serving-endpoints/iris', 'serving:manage Endpoint::iris'],
    ['PUT', '/api/2.0/permissions/serving-endpoints/ep-1', 'serving:manage Endpoint::ep-1'],
    ['PATCH', '/api/2.0/permissions/serving-endpoints/ep-1', 'serving:manage Endpoint::ep-1'],
    // mlflow:read / mlflow:write
    ['GET', '/api/2.0/mlflow/experiments/get?experiment_id=1', `mlflow:read ${W}`],
    ['GET', '/api/2.0/mlflow/registered-models/get?name=m', `mlflow:read ${W}`],
    ['POST', '/api/2.0/mlflow/experiments/search', `mlflow:read ${W}`],
    ['POST', '/api/2.0/mlflow/runs/search', `mlflow:read ${W}`],
    ['POST', '/api/2.0/mlflow/registered-models/search', `mlflow:read ${W}`],
    ['POST', '/api/2.0/mlflow/model-versions/search', `mlflow:read ${W}`],
    ['POST', '/api/2.0/mlflow/runs/create', `mlflow:write ${W}`],
    ['POST', '/api/2.0/mlflow/runs/log-metric', `mlflow:write ${W}`],
    ['POST', '/api/2.0/mlflow/experiments/create', `mlflow:write ${W}`],
    ['POST', '/api/2.0/mlflow/registered-models/create', `mlflow:write ${W}`],
    ['PATCH', '/api/2.0/mlflow/registered-models/update', `mlflow:write ${W}`],
    ['PUT', '/api/2.0/mlflow/runs/update', `workspace:other ${W}`],
    // mlflow:promote
    ['POST', '/api/2.0/mlflow/model-versions/transition-stage', 'mlflow:promote Model::<name>'],
    ['POST', '/api/2.0/mlflow/databricks/model-versions/transition-stage', 'mlflow:promote Model::<name>'],
    ['POST', '/api/2.0/mlflow/registered-models/alias', 'mlflow:promote Model::<name>'],
    [
      'DELETE',
      '/api/2.0/mlflow/registered-models/alias?name=main.ml.iris&alias=champion',
      'mlflow:promote Model::main.ml.iris',
    ],
    ['DELETE', '/api/2.0/mlflow/registered-models/delete?name=main.ml.iris', 'mlflow:promote Model::main.ml.iris'],
    ['DELETE', '/api/2.0/mlflow/registered-models/delete', 'mlflow:promote Model::<name>'],
    ['DELETE', '/api/2.0/mlflow/registered-models/delete?name=', 'mlflow:promote Model::<name>'],
    ['DELETE', '/api/2.0/mlflow/model-versions/delete?name=m&version=1', 'mlflow:promote Model::m'],
    [
      'DELETE',
      '/api/2.0/mlflow/unity-catalog/registered-models/delete?name=main.ml.iris',
      'mlflow:promote Model::main.ml.iris',
    ],
    ['POST', '/api/2.0/mlflow/registered-models/delete-alias', 'mlflow:promote Model::<name>'],
    // jobs
    ['GET', '/api/2.1/jobs/list', `jobs:read ${W}`],
    ['GET', '/api/2.2/jobs/runs/get?run_id=1', `jobs:read ${W}`],
    ['GET', '/api/2.0/jobs/get?job_id=1', `jobs:read ${W}`],
    ['POST', '/api/2.1/jobs/run-now', 'jobs:run Job::<job_id>'],
    ['POST', '/api/2.2/jobs/run-now', 'jobs:run Job::<job_id>'],
    ['POST', '/api/2.1/jobs/runs/submit', 'jobs:run Job::adhoc'],
    ['POST', '/api/2.1/jobs/runs/cancel', `jobs:run ${W}`],
    ['POST', '/api/2.1/jobs/runs/repair', `jobs:run ${W}`],
    ['POST', '/api/2.1/jobs/create', `jobs:manage ${W}`],
    ['POST', '/api/2.1/jobs/reset', `jobs:manage ${W}`],
    ['POST', '/api/2.2/jobs/update', `jobs:manage ${W}`],
    ['POST', '/api/2.1/jobs/delete', `jobs:manage ${W}`],
    ['POST', '/api/2.1/jobs/runs/delete', `workspace:other ${W}`],
    ['POST', '/api/3.0/jobs/create', `workspace:other ${W}`],
    // secrets
    ['GET', '/api/2.0/secrets/list?scope=s', `secrets:read ${W}`],
    ['GET', '/api/2.0/secrets/scopes/list', `secrets:read ${W}`],
    ['POST', '/api/2.0/secrets/get', `secrets:read ${W}`],
    ['POST', '/api/2.0/secrets/acls/list', `secrets:read ${W}`],
    ['POST', '/api/2.0/secrets/put', `secrets:write ${W}`],
    ['POST', '/api/2.0/secrets/scopes/create', `secrets:write ${W}`],
    ['POST', '/api/2.0/secrets/delete', `secrets:write ${W}`],
    // credentials:mint
    ['POST', '/api/2.0/token/create', `credentials:mint ${W}`],
    ['GET', '/api/2.0/token/list', `credentials:mint ${W}`],
    ['POST', '/api/2.0/token-management/on-behalf-of/tokens', `credentials:mint ${W}`],
    ['POST', '/api/2.0/accounts/acc-1/servicePrincipals/sp-1/credentials/secrets', `credentials:mint ${W}`],
    ['POST', '/api/2.0/accounts/acc-1/secrets', `credentials:mint ${W}`],
    // workspace:read / workspace:other
    ['GET', '/api/2.0/preview/scim/v2/Me', `workspace:read ${W}`],
    ['GET', '/api/2.0/clusters/list', `workspace:read ${W}`],
    ['POST', '/api/2.0/clusters/list', `workspace:other ${W}`],
    ['GET', '/api/2.0/clusters/get', `workspace:other ${W}`],
    ['GET', '/api/2.0/preview/scim/v2/Users', `workspace:other ${W}`],
    ['POST', '/api/2.0/workspace/import', `workspace:other ${W}`],
    ['GET', '/api', `workspace:other ${W}`],
    ['GET', '/', `workspace:other ${W}`],
    ['GET', '/ajax-api/2.0/mlflow/experiments/list', `workspace:other ${W}`],
  ];
  it.each(cases)('%s %s → %s', (method, target, expected) => {
    expect(classify(method, target)).toBe(expected);
  });

  it('covers every Databricks action', () => {
    const seen = new Set(cases.map(([, , e]) => e.split(' ')[0] as Action));
    for (const a of [
      'serving:invoke',
      'serving:read',
      'serving:manage',
      'mlflow:read',
      'mlflow:write',
      'mlflow:promote',
      'jobs:read',
      'jobs:run',
      'jobs:manage',
      'secrets:read',
      'secrets:write',
      'credentials:mint',
      'workspace:read',
      'workspace:other',
    ] as Action[]) {
      expect(seen, a).toContain(a);
    }
  });
});

describe('spellings', () => {
  it('matches case-insensitively (methods and paths)', () => {
    expect(classify('post', '/SERVING-ENDPOINTS/iris/INVOCATIONS')).toBe('serving:invoke Endpoint::iris');
    expect(classify('Post', '/API/2.0/TOKEN/CREATE')).toBe(`credentials:mint ${W}`);
    expect(classify('get', '/Api/2.0/Preview/Scim/V2/ME')).toBe(`workspace:read ${W}`);
    expect(classify('POST', '/API/2.1/JOBS/RUN-NOW')).toBe('jobs:run Job::<job_id>');
    expect(classify('POST', '/api/2.0/MLflow/Model-Versions/Transition-Stage')).toBe('mlflow:promote Model::<name>');
    expect(classify('POST', '/serving-endpoints/Chat/Completions')).toBe('serving:invoke Endpoint::<model>');
  });

  it('ignores `;params` in any segment', () => {
    expect(classify('POST', '/api/2.0/token/create;x=1')).toBe(`credentials:mint ${W}`);
    expect(classify('POST', '/api;a/2.0;b/token;c/create;d')).toBe(`credentials:mint ${W}`);
    expect(classify('POST', '/serving-endpoints/iris;v=2/invocations;x')).toBe('serving:invoke Endpoint::iris');
    expect(classify('PUT', '/api/2.0/serving-endpoints/iris;x=1/config')).toBe('serving:manage Endpoint::iris');
    expect(classify('POST', '/api/2.1/jobs/create;jsessionid=1')).toBe(`jobs:manage ${W}`);
  });

  it('ignores a trailing slash and empty segments', () => {
    expect(classify('POST', '/api/2.0/token/create/')).toBe(`credentials:mint ${W}`);
    expect(classify('POST', '/serving-endpoints/iris/invocations/')).toBe('serving:invoke Endpoint::iris');
    expect(classify('GET', '/api/2.0/serving-endpoints/')).toBe(`serving:read ${W}`);
    expect(classify('GET', '/api/2.0/serving-endpoints/iris/')).toBe('serving:read Endpoint::iris');
    expect(classify('POST', '/api/2.1/jobs/create/')).toBe(`jobs:manage ${W}`);
    expect(classify('GET', '//api//2.0//preview/scim/v2/Me/')).toBe(`workspace:read ${W}`);
  });

  it('keeps resource names in their original case (and drops their ;params)', () => {
    expect(classify('POST', '/serving-endpoints/Fraud-Scorer/invocations')).toBe(
      'serving:invoke Endpoint::Fraud-Scorer',
    );
    expect(classify('POST', '/SERVING-ENDPOINTS/IRIS/INVOCATIONS')).toBe('serving:invoke Endpoint::IRIS');
    expect(classify('GET', '/api/2.0/serving-endpoints/MyEndpoint;x=1')).toBe('serving:read Endpoint::MyEndpoint');
    expect(classify('GET', '/API/2.0/PERMISSIONS/SERVING-ENDPOINTS/Ep-ABC')).toBe('serving:read Endpoint::Ep-ABC');
    expect(classify('DELETE', '/api/2.0/mlflow/registered-models/delete?name=Main.ML.Iris')).toBe(
      'mlflow:promote Model::Main.ML.Iris',
    );
  });

  it('takes the body value as given for body-named resources', () => {
    const r = classifier.classify('POST', '/serving-endpoints/chat/completions', '');
    expect('needsBody' in r && r.needsBody.field).toBe('model');
    if ('needsBody' in r)
      expect(r.needsBody.resolve('Llama-Chat').resource).toEqual({ type: 'Endpoint', id: 'Llama-Chat' });
    const j = classifier.classify('POST', '/api/2.1/jobs/run-now', '');
    if ('needsBody' in j)
      expect(j.needsBody.resolve('123')).toEqual({ action: 'jobs:run', resource: { type: 'Job', id: '123' } });
    else expect.fail('run-now names its job in the body');
  });

  it('matchSegments lower-cases, drops ;params and empty segments', () => {
    expect(matchSegments('/API//2.0;x/Token/')).toEqual(['api', '2.0', 'token']);
    expect(matchSegments('/')).toEqual([]);
  });
});

describe('MLflow reads that are not promotions', () => {
  // GET registered-models/alias is "get model version by alias": what loading
  // models:/name@champion does. It reads; it must not need mlflow:promote and a step-up.
  it('GET registered-models/alias is mlflow:read', () => {
    expect(classify('GET', '/api/2.0/mlflow/registered-models/alias?name=main.ml.iris&alias=champion')).toBe(
      `mlflow:read ${W}`,
    );
  });

  // POST transition-requests/approve performs the requested stage transition.
  it('POST transition-requests/approve is a promotion of the named model', () => {
    expect(classify('POST', '/api/2.0/mlflow/transition-requests/approve')).toBe('mlflow:promote Model::<name>');
  });
});
