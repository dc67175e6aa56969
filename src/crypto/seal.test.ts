import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Sealer } from './seal.js';

const key = () => randomBytes(32).toString('base64');

describe('Sealer', () => {
  it('opens what it sealed, with a new IV each time', () => {
    const s = Sealer.fromBase64(key());
    const a = s.seal('refresh-token-1', 'idp-refresh');
    const b = s.seal('refresh-token-1', 'idp-refresh');
    expect(a).not.toBe(b);
    expect(a).not.toContain('refresh-token-1');
    expect(s.open(a, 'idp-refresh')).toBe('refresh-token-1');
  });

  it('refuses an altered value, another key and another purpose', () => {
    const s = Sealer.fromBase64(key());
    const sealed = s.seal('secret', 'idp-refresh');
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[2] as string, 'base64url');
    ct[0] = (ct[0] as number) ^ 1;
    parts[2] = ct.toString('base64url');
    expect(() => s.open(parts.join('.'), 'idp-refresh')).toThrow();
    expect(() => Sealer.fromBase64(key()).open(sealed, 'idp-refresh')).toThrow();
    expect(() => s.open(sealed, 'something-else')).toThrow();
    expect(() => s.open('v2.a.b.c', 'idp-refresh')).toThrow('not a sealed value');
  });

  it('needs a 32-byte key', () => {
    expect(() => Sealer.fromBase64(randomBytes(16).toString('base64'))).toThrow('must be 32 bytes');
  });
});
