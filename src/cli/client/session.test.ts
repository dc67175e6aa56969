import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as oidc from 'openid-client';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { CredentialStore } from './credentials.js';
import { generateDpopKey } from './dpop.js';
import { ClientError, notLoggedIn } from './errors.js';
import { MIN_VALIDITY_MS, Session, type SessionGrants } from './session.js';

const GW = 'https://kg.example.com';

/** A session over a real credentials store, with a fake authorization server that counts refreshes. */
async function setup(expiresInMs: number) {
  const clock = new ManualClock();
  const store = new CredentialStore(join(mkdtempSync(join(tmpdir(), 'kg-session-')), 'home'), clock);
  const key = await generateDpopKey();
  store.save({
    gateway: GW,
    dpopKey: key.privateJwk,
    accessToken: 'at-0',
    accessTokenExpiresAt: clock.now() + expiresInMs,
    refreshToken: 'rt-0',
  });
  const presented: string[] = [];
  let outcome: 'ok' | 'dead' = 'ok';
  const grants: SessionGrants = {
    discover: async () => ({}) as oidc.Configuration,
    refresh: async (_gw, _config, _key, rt) => {
      presented.push(rt);
      await new Promise((r) => setTimeout(r, 20));
      if (outcome === 'dead') throw notLoggedIn(GW);
      const n = presented.length;
      return { access_token: `at-${n}`, token_type: 'dpop', expires_in: 600, refresh_token: `rt-${n}` } as never;
    },
    exchangeForBearer: async () => ({ access_token: 'plain', token_type: 'bearer' }) as never,
  };
  const session = new Session(GW, store, clock, grants);
  return { clock, store, session, presented, kill: () => (outcome = 'dead') };
}

describe('session', () => {
  it('uses a token with more than a minute left as it is', async () => {
    const { session, presented } = await setup(MIN_VALIDITY_MS + 5_000);
    expect((await session.fresh()).accessToken).toBe('at-0');
    expect(presented).toEqual([]);
  });

  it('refreshes once for many concurrent callers (single flight), and stores the rotated token first', async () => {
    const { session, presented, store } = await setup(MIN_VALIDITY_MS - 1);
    const locks = vi.spyOn(store, 'withLock');
    const got = await Promise.all(Array.from({ length: 10 }, () => session.fresh()));
    expect(presented).toEqual(['rt-0']);
    // The others waited for the one in flight; they did not queue on the file lock.
    expect(locks).toHaveBeenCalledTimes(1);
    expect(new Set(got.map((f) => f.accessToken))).toEqual(new Set(['at-1']));
    expect(store.load(GW)).toMatchObject({ accessToken: 'at-1', refreshToken: 'rt-1' });
  });

  it('two sessions on the same credentials (two processes) refresh once: the second reads what the first saved', async () => {
    const { session, store, clock, presented } = await setup(0);
    const grants = (session as unknown as { grants: SessionGrants }).grants;
    const other = new Session(GW, store, clock, grants);
    const [a, b] = await Promise.all([session.fresh(), other.fresh()]);
    expect(presented).toEqual(['rt-0']);
    expect(a.accessToken).toBe('at-1');
    expect(b.accessToken).toBe('at-1');
  });

  it('keeps its copy in memory until told the gateway refused it, then reads the file again', async () => {
    const { session, store, clock } = await setup(MIN_VALIDITY_MS + 300_000);
    expect((await session.fresh()).accessToken).toBe('at-0');
    // A new login elsewhere replaced the credentials (and revoked the old family).
    const c = store.load(GW);
    store.save({ ...(c as NonNullable<typeof c>), accessToken: 'at-new', accessTokenExpiresAt: clock.now() + 600_000 });
    expect((await session.fresh()).accessToken).toBe('at-0');
    session.forget('at-other');
    expect((await session.fresh()).accessToken).toBe('at-0');
    session.forget('at-0');
    expect((await session.fresh()).accessToken).toBe('at-new');
  });

  it('refreshes again when the refreshed token nears its end', async () => {
    const { session, presented, clock } = await setup(0);
    await session.fresh();
    clock.advance(600_000 - MIN_VALIDITY_MS + 1);
    expect((await session.fresh()).accessToken).toBe('at-2');
    expect(presented).toEqual(['rt-0', 'rt-1']);
  });

  it('hands out no new access token when the rotated refresh token cannot be saved', async () => {
    const { session, store } = await setup(0);
    store.save = () => {
      throw new Error('disk full');
    };
    await expect(session.fresh()).rejects.toThrow('disk full');
  });

  it('a dead refresh family means "not logged in", and the dead credentials are removed', async () => {
    const { session, store, kill } = await setup(0);
    kill();
    const err = await session.fresh().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('NOT_LOGGED_IN');
    expect((err as Error).message).toBe(`not logged in: run keygate login (gateway ${GW})`);
    expect(store.load(GW)).toBeUndefined();
  });

  it('without credentials: "not logged in"', async () => {
    const { session, store } = await setup(0);
    store.remove(GW);
    await expect(session.fresh()).rejects.toThrow(/^not logged in: run keygate login/);
  });
});
