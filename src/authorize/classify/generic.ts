/**
 * The generic preset, for ML APIs other than Databricks (OpenAI-compatible servers, KServe v2,
 * MLflow OSS): configured path prefixes and methods map to actions on `Api::<upstream>`.
 * Without rules: reads are `api:read`, POST is `api:invoke`, other methods `api:manage`.
 */
import type { Action } from '../actions.js';
import { matchSegments } from './databricks.js';
import type { Classifier, ClassifyResult } from './types.js';

export interface GenericRule {
  prefix: string;
  methods?: readonly string[] | undefined;
  action: Action;
}

export class GenericClassifier implements Classifier {
  private readonly rules: { segments: string[]; methods: Set<string> | undefined; action: Action }[];

  constructor(
    private readonly api: string,
    rules: readonly GenericRule[],
  ) {
    // Longest prefix first.
    this.rules = rules
      .map((r) => ({
        segments: matchSegments(r.prefix),
        methods: r.methods ? new Set(r.methods.map((m) => m.toUpperCase())) : undefined,
        action: r.action,
      }))
      .sort((a, b) => b.segments.length - a.segments.length);
  }

  classify(method: string, path: string): ClassifyResult {
    const m = method.toUpperCase();
    const s = matchSegments(path);
    const resource = { type: 'Api' as const, id: this.api };
    for (const r of this.rules) {
      if (r.methods && !r.methods.has(m)) continue;
      if (r.segments.every((seg, i) => s[i] === seg)) return { action: r.action, resource };
    }
    if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return { action: 'api:read', resource };
    if (m === 'POST') return { action: 'api:invoke', resource };
    return { action: 'api:manage', resource };
  }
}
