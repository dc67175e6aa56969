import { describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { ServicePrincipals } from './service-principals.js';

async function setup() {
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(Date.now());
  return { store, clock, sps: new ServicePrincipals(store, clock, 90 * 86_400_000) };
}

describe('service principal secrets', () => {
  it('after ten wrong secrets in a minute, unknown secrets are refused unhashed; a secret already verified still works', async () => {
    const { store, clock, sps } = await setup();
    const { sp, secret } = await sps.create({ name: 'ci', roles: [], createdBy: 't' });
    const good = secret?.secret as string;
    expect(await sps.verifySecret(sp.id, good)).toBe(true);
    // A second live secret that has never been presented yet.
    const rotated = (await sps.rotate(sp.id)).secret.secret;
    for (let i = 0; i < 10; i++) expect(await sps.verifySecret(sp.id, `kgs_guess${i}`)).toBe(false);
    // The known-good secret still passes (from the verified cache); the never-seen one waits out the minute.
    expect(await sps.verifySecret(sp.id, good)).toBe(true);
    expect(await sps.verifySecret(sp.id, rotated)).toBe(false);
    clock.advance(60_000);
    expect(await sps.verifySecret(sp.id, rotated)).toBe(true);
    await store.close();
  });

  it('expired, revoked and disabled: never a match', async () => {
    const { store, clock, sps } = await setup();
    const { sp, secret } = await sps.create({ name: 'old', roles: [], createdBy: 't' });
    const s = secret?.secret as string;
    expect(await sps.verifySecret(sp.id, s)).toBe(true);
    clock.advance(90 * 86_400_000);
    expect(await sps.verifySecret(sp.id, s)).toBe(false);
    const { sp: sp2, secret: sec2 } = await sps.create({ name: 'off', roles: [], createdBy: 't' });
    expect(await sps.verifySecret(sp2.id, sec2?.secret as string)).toBe(true);
    await store.disableServicePrincipal(sp2.id, clock.now());
    expect(await sps.verifySecret(sp2.id, sec2?.secret as string)).toBe(false);
    await store.close();
  });
});
