import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AUTH_EVENT_KINDS } from '../authenticate/auth-events.js';
import { AUDIT_KINDS } from './catalogue.js';

describe('the audit event catalogue', () => {
  it('docs/audit-events.md lists exactly the kinds in code, with the same descriptions', () => {
    const doc = readFileSync(new URL('../../docs/audit-events.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `([a-z_.]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(Object.fromEntries(rows)).toEqual(AUDIT_KINDS);
  });

  it('every authentication event kind has an audit kind', () => {
    for (const k of AUTH_EVENT_KINDS) expect(Object.keys(AUDIT_KINDS)).toContain(k);
  });
});
