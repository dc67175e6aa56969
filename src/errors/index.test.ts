import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, KeygateError, toKeygateError } from './index.js';

describe('error codes', () => {
  it('docs/errors.md lists exactly the codes in the code, with the same status', () => {
    const md = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Map(
      [...md.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1] as string, Number(m[2])]),
    );
    const inCode = new Map(Object.entries(ERROR_CODES).map(([k, v]) => [k, v.status]));
    expect(documented).toEqual(inCode);
  });

  it('a 5xx never carries the specific message to the client', () => {
    const e = new KeygateError('UPSTREAM_UNAVAILABLE', { message: 'connect ECONNREFUSED 10.1.2.3:443' });
    expect(e.toWire('r1')).toEqual({
      error_code: 'UPSTREAM_UNAVAILABLE',
      message: 'The upstream service could not be reached.',
      request_id: 'r1',
    });
  });

  it('a 4xx keeps its public message; detail stays out of the wire form', () => {
    const e = new KeygateError('BAD_REQUEST', { message: 'Bad path.', detail: 'secret internal detail' });
    expect(JSON.stringify(e.toWire())).not.toContain('secret internal detail');
    expect(e.toWire().message).toBe('Bad path.');
  });

  it('unknown errors become a generic INTERNAL_ERROR', () => {
    const e = toKeygateError(new Error('db password is hunter2'));
    expect(e.code).toBe('INTERNAL_ERROR');
    expect(JSON.stringify(e.toWire())).not.toContain('hunter2');
  });
});
