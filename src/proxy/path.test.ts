import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../errors/index.js';
import { normalizeTarget } from './path.js';

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/paths.json', import.meta.url), 'utf8')) as {
  ok: [string, string, string][];
  refuse: [string, string][];
};

describe('request-target normalization', () => {
  it.each(vectors.ok)('%s → %s', (input, path, query) => {
    expect(normalizeTarget(input)).toEqual({ path, query });
  });

  it.each(vectors.refuse)('refuses %j (%s)', (input) => {
    let err: unknown;
    try {
      normalizeTarget(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).code).toBe('BAD_REQUEST');
    expect((err as KeygateError).status).toBe(400);
  });

  it('is idempotent: a normalized path normalizes to itself', () => {
    for (const [input] of vectors.ok) {
      const once = normalizeTarget(input);
      expect(normalizeTarget(once.path + once.query)).toEqual(once);
    }
  });
});
