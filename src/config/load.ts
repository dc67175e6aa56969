/**
 * Load keygate.yaml (or the embedded default when there is none), apply KEYGATE_*
 * environment overrides, validate with the one schema, and freeze the result.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { envOverrides } from './env.js';
import { type Config, configSchema } from './schema.js';

export interface ConfigIssue {
  /** Dotted path with [i] for array items, e.g. `routes[2].upstream`; empty for the whole file. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(source: string, issues: ConfigIssue[]) {
    super(`${source}: ${issues.map(formatIssue).join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return i.path === '' ? i.message : `${i.path}: ${i.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function fromZod(issues: readonly z.core.$ZodIssue[], raw: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push({ path: formatPath([...i.path, k]), message: 'unknown key' });
    } else if (i.code === 'invalid_union' && i.errors.length > 0 && i.message === 'Invalid input') {
      out.push({ path: formatPath(i.path), message: 'does not match any allowed form' });
    } else if (i.code === 'invalid_type' && valueAt(raw, i.path) === undefined) {
      out.push({ path: formatPath(i.path), message: 'is required' });
    } else {
      out.push({ path: formatPath(i.path), message: humanize(i) });
    }
  }
  return out;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let cur = raw;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

function humanize(i: z.core.$ZodIssue): string {
  if (i.code === 'invalid_type') {
    const article = /^[aeiou]/.test(i.expected) ? 'an' : 'a';
    return `must be ${i.expected === 'int' ? 'an integer' : `${article} ${i.expected}`}`;
  }
  if (i.code === 'invalid_key') return i.issues[0]?.message ?? 'invalid name';
  if (i.code === 'too_big') return `must be at most ${String(i.maximum)}`;
  if (i.code === 'too_small') {
    return i.origin === 'string' && i.minimum === 1 ? 'must not be empty' : `must be at least ${String(i.minimum)}`;
  }
  if (i.code === 'invalid_value') return `must be one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return i.message;
}

/** Validate a plain object against the schema; the result is deeply frozen. */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(source, fromZod(r.error.issues, raw ?? {}));
  return deepFreeze(r.data);
}

export interface LoadOptions {
  /** Path to keygate.yaml; undefined means: KEYGATE_CONFIG, else ./keygate.yaml if present, else the embedded default. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig {
  config: Config;
  /** The file read, or 'embedded default'. */
  source: string;
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  let file = opts.file ?? env.KEYGATE_CONFIG;
  if (file === undefined && existsSync('keygate.yaml')) file = 'keygate.yaml';
  let raw: Record<string, unknown> = {};
  const source = file ?? 'embedded default';
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(source, [{ path: '', message: `cannot read file (${(e as NodeJS.ErrnoException).code})` }]);
    }
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      throw new ConfigError(
        source,
        doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0] ?? e.code}` })),
      );
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) {
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw new ConfigError(source, [{ path: '', message: 'must be a YAML mapping' }]);
      }
      raw = value as Record<string, unknown>;
    }
  }
  const { overrides, issues } = envOverrides(env);
  if (issues.length > 0) throw new ConfigError('environment', issues);
  for (const o of overrides) setPath(raw, o.path, o.value);
  return { config: parseConfig(raw, source), source };
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    const next = cur[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1] as string] = value;
}

export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
