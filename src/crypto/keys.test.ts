import { describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { SigningKeys } from './keys.js';

const DAY = 86_400_000;

async function store(): Promise<SqliteStore> {
  const s = new SqliteStore({ path: ':memory:' });
  await s.migrate();
  return s;
}

describe('SigningKeys rotation', () => {
  it('keeps the key until it is rotateAfterMs old, then makes a new one and keeps the old one published for publishForMs', async () => {
    const s = await store();
    const clock = new ManualClock();
    const policy = { rotateAfterMs: 30 * DAY, publishForMs: 16 * 60_000 };
    const first = await SigningKeys.load(s, 'token', clock, policy);
    clock.advance(30 * DAY - 1);
    expect((await SigningKeys.load(s, 'token', clock, policy)).current().kid).toBe(first.current().kid);
    clock.advance(1);
    const second = await SigningKeys.load(s, 'token', clock, policy);
    expect(second.current().kid).not.toBe(first.current().kid);
    expect(second.jwks().keys.map((k) => k.kid)).toEqual(expect.arrayContaining([first.current().kid, second.current().kid]));
    // Loading again (another replica, a restart) neither rotates again nor drops the old key early.
    clock.advance(16 * 60_000 - 1);
    const again = await SigningKeys.load(s, 'token', clock, policy);
    expect(again.current().kid).toBe(second.current().kid);
    expect(again.jwks().keys.map((k) => k.kid)).toContain(first.current().kid);
    // Once its tokens can no longer be valid, the retired key is no longer published.
    clock.advance(1);
    const later = await SigningKeys.load(s, 'token', clock, policy);
    expect(later.jwks().keys.map((k) => k.kid)).toEqual([second.current().kid]);
    await s.close();
  });

  it('keys of one use never sign for another', async () => {
    const s = await store();
    const clock = new ManualClock();
    const token = await SigningKeys.load(s, 'token', clock);
    const assertion = await SigningKeys.load(s, 'assertion', clock);
    expect(token.current().kid).not.toBe(assertion.current().kid);
    expect(token.jwks().keys.map((k) => k.kid)).not.toContain(assertion.current().kid);
    await s.close();
  });
});
