import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, isStoreUnavailable, KeygateError, toKeygateError } from './index.js';

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

  it("the store's outage is 503 TEMPORARILY_UNAVAILABLE, with nothing of the cause on the wire", () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
    const adminShutdown = Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    });
    const lost = Object.assign(new Error('server closed the connection'), { code: '08006' });
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    for (const cause of [refused, adminShutdown, lost, busy, new Error('Connection terminated unexpectedly')]) {
      const e = toKeygateError(cause);
      expect(e.code, cause.message).toBe('TEMPORARILY_UNAVAILABLE');
      expect(e.status).toBe(503);
      expect(JSON.stringify(e.toWire())).not.toContain('5432');
    }
    // A constraint violation is a bug, not an outage.
    expect(toKeygateError(Object.assign(new Error('duplicate key'), { code: '23505' })).code).toBe('INTERNAL_ERROR');
  });
});

describe('the store unavailable', () => {
  const err = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  it.each([
    'SQLITE_BUSY',
    'SQLITE_LOCKED',
    'SQLITE_FULL',
    'SQLITE_READONLY',
    'SQLITE_READONLY_DBMOVED',
    'SQLITE_IOERR_WRITE',
    'SQLITE_CANTOPEN',
    '08006',
    '57P01',
    '53100',
    '25006',
    'ECONNREFUSED',
    'ENOSPC',
  ])('%s is an outage: 503 TEMPORARILY_UNAVAILABLE, retryable', (code) => {
    expect(isStoreUnavailable(err(code))).toBe(true);
    expect(toKeygateError(err(code)).code).toBe('TEMPORARILY_UNAVAILABLE');
  });
  it.each(['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_ERROR', '23505', '42P01'])('%s is a bug, not an outage', (code) => {
    expect(isStoreUnavailable(err(code))).toBe(false);
    expect(toKeygateError(err(code)).code).toBe('INTERNAL_ERROR');
  });
});
