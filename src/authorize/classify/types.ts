import type { Action } from '../actions.js';

/** A Cedar entity reference, e.g. { type: 'Endpoint', id: 'fraud' }. */
export interface ResourceRef {
  /** Keygate: its own admin API (not proxied). */
  type: 'Workspace' | 'Endpoint' | 'Model' | 'Job' | 'Api' | 'Keygate';
  id: string;
}

export interface Classification {
  action: Action;
  resource: ResourceRef;
}

/**
 * What classification needs from the request body, when the path alone does not name the
 * resource (OpenAI-style routes name the endpoint in `model`; stage transitions name the model).
 */
export interface BodyFieldNeed {
  field: string;
  /** The value the query gave: used when there is no body; with a body, the body must agree. */
  query?: string;
  /** Builds the classification once the field's value is known. (Not `then`: that would make it thenable.) */
  resolve(value: string): Classification;
}

export type ClassifyResult = Classification | { needsBody: BodyFieldNeed };

export interface Classifier {
  /** `path` is normalized; `query` includes the leading '?' or is ''. */
  classify(method: string, path: string, query: string): ClassifyResult;
}
