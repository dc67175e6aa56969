/**
 * KEYGATE_* environment overrides, derived from the schema: every scalar (or list) setting
 * reachable through plain objects has a variable named after its path, e.g.
 * listen.port → KEYGATE_LISTEN_PORT, publicUrl → KEYGATE_PUBLIC_URL. Settings inside
 * `upstreams` and `routes` live in the file only. Unknown KEYGATE_* variables are refused so
 * that a typo never silently falls back to a default.
 */
import { z } from 'zod';
import type { ConfigIssue } from './load.js';
import { configSchema } from './schema.js';

/**
 * Variables that are not gateway settings but are read elsewhere: the config file's path, and
 * the people's CLI (`keygate login|token|proxy`): its folder and the gateway it talks to. The
 * same shell often runs both kinds of command, so these must not make a config invalid.
 */
export const RESERVED_ENV = new Set(['KEYGATE_CONFIG', 'KEYGATE_HOME', 'KEYGATE_GATEWAY']);

type Leaf = { path: string[]; kind: 'string' | 'number' | 'integer' | 'boolean' | 'array'; description?: string };

interface JsonSchemaNode {
  type?: string | string[];
  properties?: Record<string, JsonSchemaNode>;
  anyOf?: JsonSchemaNode[];
  additionalProperties?: unknown;
  enum?: unknown[];
  description?: string;
}

export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
}

export function envName(path: readonly string[]): string {
  return `KEYGATE_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function leafKind(node: JsonSchemaNode): Leaf['kind'] | undefined {
  const types = new Set<string>();
  const visit = (n: JsonSchemaNode) => {
    if (n.anyOf) n.anyOf.forEach(visit);
    else if (Array.isArray(n.type)) for (const t of n.type) types.add(t);
    else if (n.type) types.add(n.type);
    else if (n.enum) types.add('string');
  };
  visit(node);
  if (types.size === 0 || types.has('object')) return undefined;
  if (types.has('array')) return 'array';
  if (types.has('string')) return 'string';
  if (types.has('boolean')) return 'boolean';
  if (types.has('integer')) return 'integer';
  if (types.has('number')) return 'number';
  return undefined;
}

let cached: Map<string, Leaf> | undefined;

/** Environment variable name → setting, for every overridable setting. */
export function envSettings(): Map<string, Leaf> {
  if (cached) return cached;
  const out = new Map<string, Leaf>();
  const walk = (node: JsonSchemaNode, path: string[]) => {
    if (node.properties) {
      for (const [k, child] of Object.entries(node.properties)) {
        if (path.length === 0 && (k === 'upstreams' || k === 'routes')) continue;
        walk(child, [...path, k]);
      }
      return;
    }
    const kind = leafKind(node);
    if (kind === undefined) return;
    const leaf: Leaf = { path, kind };
    if (node.description !== undefined) leaf.description = node.description;
    const name = envName(path);
    if (out.has(name)) throw new Error(`two settings map to ${name}`);
    out.set(name, leaf);
  };
  walk(configJsonSchema() as JsonSchemaNode, []);
  cached = out;
  return out;
}

export function envOverrides(env: NodeJS.ProcessEnv): {
  overrides: { path: string[]; value: unknown }[];
  issues: ConfigIssue[];
} {
  const settings = envSettings();
  const overrides: { path: string[]; value: unknown }[] = [];
  const issues: ConfigIssue[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('KEYGATE_') || raw === undefined || RESERVED_ENV.has(name)) continue;
    const leaf = settings.get(name);
    if (!leaf) {
      issues.push({ path: name, message: 'not a Keygate setting (see docs/configuration.md)' });
      continue;
    }
    let value: unknown = raw;
    if (leaf.kind === 'integer' || leaf.kind === 'number') {
      const n = Number(raw);
      value = raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    } else if (leaf.kind === 'boolean') {
      value = raw === 'true' ? true : raw === 'false' ? false : raw;
    } else if (leaf.kind === 'array') {
      value = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    }
    overrides.push({ path: leaf.path, value });
  }
  return { overrides, issues };
}
