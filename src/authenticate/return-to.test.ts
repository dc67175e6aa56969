import { describe, expect, it } from 'vitest';
import { safeReturnTo } from './return-to.js';

describe('return_to after login (no open redirect)', () => {
  it.each([
    ['/api/2.0/serving-endpoints', '/api/2.0/serving-endpoints'],
    ['/ml/experiments?id=1#runs', '/ml/experiments?id=1#runs'],
    ['/.keygate/devices', '/.keygate/devices'],
    ['/a/../b', '/b'],
  ])('keeps same-origin path %s', (input, expected) => {
    expect(safeReturnTo(input)).toBe(expected);
  });

  it.each([
    '//evil.example',
    '//evil.example/path',
    'https://evil.example',
    'http://evil.example/',
    'javascript:alert(1)',
    '/\\evil.example',
    '\\\\evil.example',
    '/%5cevil.example',
    '/%5Cevil.example',
    '/%2fevil.example',
    '/%2F%2Fevil.example',
    '/\t/evil.example',
    '/%09/evil.example',
    '/\r\n/evil.example',
    'evil.example',
    '',
    ' /x',
    'x'.repeat(3000),
  ])('replaces %j with /', (input) => {
    expect(safeReturnTo(input)).toBe('/');
  });

  it('non-strings become /', () => {
    expect(safeReturnTo(undefined)).toBe('/');
    expect(safeReturnTo(['/x'])).toBe('/');
  });
});
