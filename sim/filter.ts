// A small subset of MLflow's search filter grammar: clauses `key OP value` joined by AND, where OP is
// = != > >= < <= LIKE ILIKE and value is a quoted string or a number. Anything else is a 400.
import { invalidParam } from './errors.js';

type Value = string | number | undefined;

const CLAUSE = /^\s*([A-Za-z_][\w.]*|[a-z]+\.`[^`]+`)\s*(=|!=|>=|<=|>|<|LIKE|ILIKE)\s*('[^']*'|"[^"]*"|-?\d+(?:\.\d+)?)\s*$/i;

/** Compiles `filter` into a predicate over records read through `get(key)`; `allowed` limits the keys. */
export function compileFilter(filter: string | undefined, allowed: (key: string) => boolean): (get: (key: string) => Value) => boolean {
  if (!filter?.trim()) return () => true;
  const clauses = filter.split(/\s+AND\s+/i).map((text) => {
    const m = CLAUSE.exec(text);
    if (!m?.[1] || !m[2] || !m[3]) throw invalidParam(`Unsupported filter clause: ${text.trim()}`);
    const key = m[1].replace(/`/g, '');
    if (!allowed(key)) throw invalidParam(`Unsupported filter key: ${key}`);
    const raw = m[3];
    const value: string | number = /^['"]/.test(raw) ? raw.slice(1, -1) : Number(raw);
    return { key, op: m[2].toUpperCase(), value };
  });
  return (get) => clauses.every((c) => test(get(c.key), c.op, c.value));
}

function test(actual: Value, op: string, expected: string | number): boolean {
  if (actual === undefined) return false;
  if (op === 'LIKE' || op === 'ILIKE') {
    const source = String(expected)
      .split('')
      .map((ch) => (ch === '%' ? '.*' : ch === '_' ? '.' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    return new RegExp(`^${source}$`, op === 'ILIKE' ? 'is' : 's').test(String(actual));
  }
  const numeric = typeof expected === 'number';
  const a = numeric ? Number(actual) : String(actual);
  switch (op) {
    case '=':
      return a === expected;
    case '!=':
      return a !== expected;
    case '>':
      return a > expected;
    case '>=':
      return a >= expected;
    case '<':
      return a < expected;
    default:
      return a <= expected;
  }
}
