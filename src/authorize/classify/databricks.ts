/**
 * The Databricks preset (DESIGN.md §5): method + normalized path → action and resource.
 * Matching is case-insensitive, ignores a trailing slash and `;parameters` in segments, so
 * that no spelling of a path an upstream might accept reaches a more permissive class than
 * its canonical form. Anything unrecognised is `workspace:other`, which no shipped role allows.
 */
import { KeygateError } from '../../errors/index.js';
import type { Action } from '../actions.js';
import type { Classification, Classifier, ClassifyResult, ResourceRef } from './types.js';

const WORKSPACE: ResourceRef = { type: 'Workspace', id: 'workspace' };

function is(action: Action, resource: ResourceRef = WORKSPACE): Classification {
  return { action, resource };
}

/** Path segments for matching: lower-cased, `;params` dropped, empty segments removed. */
export function matchSegments(path: string): string[] {
  return path
    .split('/')
    .map((s) => {
      const semi = s.indexOf(';');
      return (semi === -1 ? s : s.slice(0, semi)).toLowerCase();
    })
    .filter((s) => s !== '');
}

/** The original-case segment (for resource names), `;params` dropped. */
function originalSegments(path: string): string[] {
  return path
    .split('/')
    .map((s) => {
      const semi = s.indexOf(';');
      return semi === -1 ? s : s.slice(0, semi);
    })
    .filter((s) => s !== '');
}

/** A query parameter that must appear at most once (parsers disagree on which copy wins). */
function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  const all = new URLSearchParams(query.slice(1)).getAll(name);
  if (all.length > 1) {
    throw new KeygateError('BAD_REQUEST', {
      message: `"${name}" appears more than once in the query.`,
      detail: `duplicate ${name} in query`,
    });
  }
  const v = all[0];
  return v === undefined || v === '' ? undefined : v;
}

const MLFLOW_READ_POSTS = new Set(['experiments/search', 'runs/search', 'registered-models/search', 'model-versions/search']);
const MLFLOW_PROMOTE = new Set([
  'model-versions/transition-stage',
  'databricks/model-versions/transition-stage',
  'registered-models/alias',
  'registered-models/delete',
  'registered-models/delete-alias',
  'model-versions/delete',
  'transition-requests/approve',
  'unity-catalog/registered-models/delete',
  'unity-catalog/registered-models/alias',
  'unity-catalog/model-versions/delete',
]);
const JOBS_MANAGE = new Set(['create', 'reset', 'update', 'delete']);
const OPENAI_ROUTES = new Set(['chat/completions', 'completions', 'embeddings', 'responses']);

const endpoint = (name: string): ResourceRef => ({ type: 'Endpoint', id: name });
const model = (name: string): ResourceRef => ({ type: 'Model', id: name });
const job = (id: string): ResourceRef => ({ type: 'Job', id });

export class DatabricksClassifier implements Classifier {
  classify(method: string, path: string, query: string): ClassifyResult {
    const m = method.toUpperCase();
    const s = matchSegments(path);
    const o = originalSegments(path);
    const rest = (from: number) => s.slice(from).join('/');

    // /serving-endpoints/… (the data plane, outside /api)
    if (s[0] === 'serving-endpoints') {
      if (m === 'POST' && OPENAI_ROUTES.has(rest(1))) {
        // OpenAI-compatible: the endpoint is the body's `model`.
        return { needsBody: { field: 'model', resolve: (name) => is('serving:invoke', endpoint(name)) } };
      }
      if (m === 'POST' && s.length >= 3 && s.at(-1) === 'invocations') {
        return is('serving:invoke', endpoint(o[1] as string));
      }
      return is('workspace:other');
    }

    if (s[0] !== 'api' || s[1] === undefined) return is('workspace:other');
    const version = s[1];
    const area = s[2];

    // Long-lived credential minting: tokens, token management, OAuth secrets, PAT exchange.
    if (area === 'token' || area === 'token-management' || (area === 'accounts' && s.includes('credentials'))) {
      return is('credentials:mint');
    }
    if (area === 'accounts' && s.includes('secrets')) return is('credentials:mint');

    if (area === 'serving-endpoints') {
      const name = o[3];
      if (m === 'GET' || m === 'HEAD') return is('serving:read', name === undefined ? WORKSPACE : endpoint(name));
      if (m === 'POST' && name === undefined) return is('serving:manage');
      return is('serving:manage', name === undefined ? WORKSPACE : endpoint(name));
    }
    if (area === 'permissions' && s[3] === 'serving-endpoints') {
      const id = o[4];
      const res = id === undefined ? WORKSPACE : endpoint(id);
      return m === 'GET' || m === 'HEAD' ? is('serving:read', res) : is('serving:manage', res);
    }

    if (area === 'mlflow') {
      const op = rest(3);
      // Reading an alias (loading models:/name@alias) is a read, not a promotion.
      const readsAlias = (m === 'GET' || m === 'HEAD') && op.endsWith('registered-models/alias');
      if (MLFLOW_PROMOTE.has(op) && !readsAlias) {
        const fromQuery = queryParam(query, 'name');
        const resolve = (name: string) => is('mlflow:promote', model(name));
        return {
          needsBody: fromQuery === undefined ? { field: 'name', resolve } : { field: 'name', query: fromQuery, resolve },
        };
      }
      if (m === 'GET' || m === 'HEAD' || (m === 'POST' && MLFLOW_READ_POSTS.has(op))) return is('mlflow:read');
      if (m === 'POST' || m === 'PATCH' || m === 'DELETE') return is('mlflow:write');
      return is('workspace:other');
    }

    if (area === 'jobs' && (version === '2.1' || version === '2.2' || version === '2.0')) {
      const op = rest(3);
      if (m === 'GET' || m === 'HEAD') return is('jobs:read');
      if (m === 'POST' && op === 'run-now') {
        return { needsBody: { field: 'job_id', resolve: (id) => is('jobs:run', job(id)) } };
      }
      if (m === 'POST' && op === 'runs/submit') return is('jobs:run', job('adhoc'));
      if (m === 'POST' && (op === 'runs/cancel' || op === 'runs/repair')) return is('jobs:run');
      if (m === 'POST' && JOBS_MANAGE.has(op)) return is('jobs:manage');
      return is('workspace:other');
    }

    if (area === 'secrets') {
      return m === 'GET' || m === 'HEAD' || rest(3) === 'get' || rest(3).endsWith('list')
        ? is('secrets:read')
        : is('secrets:write');
    }

    if ((m === 'GET' || m === 'HEAD') && (rest(2) === 'preview/scim/v2/me' || rest(2) === 'clusters/list')) {
      return is('workspace:read');
    }
    return is('workspace:other');
  }
}
