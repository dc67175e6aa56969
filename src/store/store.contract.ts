/**
 * The behaviour every Store must have, as one vitest suite that each implementation runs
 * (src/store/sqlite/store.test.ts, src/store/postgres/store.test.ts). The concurrency cases use
 * Promise.all: on PostgreSQL the calls really race on separate pool connections; on SQLite they
 * check the same contract.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from './migrations/index.js';
import {
  type AgentGrantRecord,
  type ApprovalRecord,
  type AuthEventRecord,
  type ChallengeRecord,
  type CredentialRecord,
  DuplicateCredentialError,
  type EnrollmentTokenRecord,
  type GroupRecord,
  type OAuthArtifactRecord,
  type ServicePrincipalRecord,
  type SessionRecord,
  type SigningKeyRecord,
  type Store,
  type UserRecord,
} from './types.js';

export interface StoreContractTarget {
  /** A store on a fresh, empty database; the suite migrates it and closes it. */
  open(): Promise<Store>;
  /** `n` stores (each with its own connections) on one fresh, empty database; the suite closes them. */
  openShared(n: number): Promise<Store[]>;
}

const T0 = 1_700_000_000_000;
const LATEST = Math.max(...MIGRATIONS.map((m) => m.version));

type NewUser = Parameters<Store['upsertUser']>[0];

function newUser(email: string, o: Partial<NewUser> = {}): NewUser {
  const key = email.toLowerCase();
  return { id: `u:${key}`, email, displayName: `Name of ${key}`, webauthnId: `wa:${key}`, createdAt: T0, ...o };
}

function credential(userId: string, id: string, o: Partial<CredentialRecord> = {}): CredentialRecord {
  return {
    id,
    userId,
    publicKey: new Uint8Array([1, 2, 3, 250, 0, 7]),
    counter: 5,
    aaguid: '00000000-0000-0000-0000-000000000000',
    transports: ['internal', 'hybrid'],
    backupEligible: true,
    backedUp: false,
    uvInitialized: false,
    attestationFmt: 'none',
    attested: false,
    name: `key ${id}`,
    createdAt: T0,
    lastUsedAt: null,
    revokedAt: null,
    clonedAt: null,
    ...o,
  };
}

function session(userId: string, idHash: string, o: Partial<SessionRecord> = {}): SessionRecord {
  return {
    idHash,
    userId,
    credentialId: 'cred-1',
    authEventId: `evt-${idHash}`,
    authTime: T0,
    uv: true,
    createdAt: T0,
    lastSeenAt: T0,
    expiresAt: T0 + 3_600_000,
    revokedAt: null,
    ip: '192.0.2.1',
    userAgent: 'test',
    ...o,
  };
}

function authEvent(id: string, o: Partial<AuthEventRecord> = {}): AuthEventRecord {
  return {
    id,
    at: T0,
    kind: 'auth.login',
    outcome: 'success',
    reason: null,
    userId: null,
    credentialId: null,
    aaguid: null,
    authenticator: null,
    uv: null,
    backupEligible: null,
    backedUp: null,
    ip: '192.0.2.1',
    userAgent: 'test',
    ...o,
  };
}

function artifact(id: string, o: Partial<OAuthArtifactRecord> = {}): OAuthArtifactRecord {
  return {
    model: 'AuthorizationCode',
    id,
    payload: JSON.stringify({ id }),
    grantId: null,
    userCode: null,
    uid: null,
    expiresAt: T0 + 60_000,
    consumedAt: null,
    ...o,
  };
}

function challenge(value: string, o: Partial<ChallengeRecord> = {}): ChallengeRecord {
  return {
    challenge: value,
    kind: 'authentication',
    userId: null,
    bindingHash: 'binding',
    enrollmentHash: null,
    allowIds: ['cred-a', 'cred-b'],
    expiresAt: Date.now() + 60_000,
    ...o,
  };
}

function enrollmentToken(tokenHash: string, userId: string, o: Partial<EnrollmentTokenRecord> = {}) {
  return {
    tokenHash,
    userId,
    kind: 'enroll',
    createdBy: 'admin',
    createdAt: T0,
    expiresAt: T0 + 60_000,
    usedAt: null,
    ...o,
  } satisfies EnrollmentTokenRecord;
}

function servicePrincipal(id: string, name: string, o: Partial<ServicePrincipalRecord> = {}): ServicePrincipalRecord {
  return {
    id,
    name,
    description: `about ${name}`,
    roles: ['reader', 'writer'],
    jwks: null,
    createdAt: T0,
    createdBy: 'admin',
    disabledAt: null,
    ...o,
  };
}

function group(id: string, name: string): GroupRecord {
  return { id, name, description: `the ${name}`, createdAt: T0, createdBy: 'admin', externalId: null };
}

/**
 * Runs the calls together, after opening a connection for each (concurrent pings), so that on a
 * pooled store they race on open connections instead of queueing behind connection set-up.
 */
async function race<T>(s: Store, calls: (() => Promise<T>)[]): Promise<T[]> {
  await Promise.all(calls.map(() => s.ping()));
  return Promise.all(calls.map((call) => call()));
}

const ids = (xs: readonly { id: string }[]): string[] => xs.map((x) => x.id);
const count = <T>(xs: readonly T[], v: T): number => xs.filter((x) => x === v).length;

export function storeContract(target: StoreContractTarget): void {
  describe('Store contract', () => {
    let s: Store;
    const opened: Store[] = [];
    const shared = async (n: number): Promise<Store[]> => {
      const stores = await target.openShared(n);
      opened.push(...stores);
      return stores;
    };

    beforeEach(async () => {
      s = await target.open();
      opened.push(s);
      await s.migrate();
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((x) => x.close()));
    });

    /** A user made through upsertUser, with roles. */
    const addUser = (email: string, roles: string[] = [], o: Partial<NewUser> = {}): Promise<UserRecord> =>
      s.upsertUser(newUser(email, o), roles);

    describe('migrations and lifecycle', () => {
      it('a second run applies nothing and reports the current version', async () => {
        expect(await s.migrate()).toEqual({ applied: [], current: LATEST });
      });

      it('two stores migrating a fresh database at once both succeed, and each migration is applied once', async () => {
        const [a, b] = (await shared(2)) as [Store, Store];
        const [ra, rb] = await Promise.all([a.migrate(), b.migrate()]);
        const all = [...ra.applied, ...rb.applied].sort((x, y) => x - y);
        expect(all).toEqual(MIGRATIONS.map((m) => m.version));
        expect([ra.current, rb.current]).toEqual([LATEST, LATEST]);
        expect((await a.migrate()).applied).toEqual([]);
        // One database: what one writes, the other reads.
        await a.initMeta('instance', 'shared');
        expect(await b.getMeta('instance')).toBe('shared');
      });

      it('ping answers; after close it fails, and a second close is harmless', async () => {
        await expect(s.ping()).resolves.toBeUndefined();
        await s.close();
        await expect(s.ping()).rejects.toThrow();
        await expect(s.close()).resolves.toBeUndefined();
      });
    });

    describe('meta', () => {
      it('is unset until set, and the first writer wins', async () => {
        expect(await s.getMeta('instance')).toBeNull();
        expect(await s.initMeta('instance', 'one')).toBe('one');
        expect(await s.initMeta('instance', 'two')).toBe('one');
        expect(await s.getMeta('instance')).toBe('one');
      });

      it('concurrent initMeta calls with different values all see the same stored value', async () => {
        const seen = await race(
          s,
          ['a', 'b', 'c', 'd', 'e', 'f'].map((v) => () => s.initMeta('race', v)),
        );
        const stored = await s.getMeta('race');
        expect(['a', 'b', 'c', 'd', 'e', 'f']).toContain(stored);
        expect(seen).toEqual(seen.map(() => stored));
      });
    });

    describe('signing keys', () => {
      const key = (kid: string, use: SigningKeyRecord['use'], createdAt: number, retiresAt: number | null = null) =>
        ({
          kid,
          alg: 'ES256',
          use,
          publicJwk: `{"kid":"${kid}"}`,
          privateJwk: `{"kid":"${kid}","d":"x"}`,
          createdAt,
          retiresAt,
        }) satisfies SigningKeyRecord;

      it('are listed by use, newest first, as stored', async () => {
        await s.insertSigningKey(key('t1', 'token', T0));
        await s.insertSigningKey(key('t2', 'token', T0 + 10, T0 + 99));
        await s.insertSigningKey(key('a1', 'audit', T0 + 5));
        expect(await s.listSigningKeys('token')).toEqual([
          key('t2', 'token', T0 + 10, T0 + 99),
          key('t1', 'token', T0),
        ]);
        expect(await s.listSigningKeys('audit')).toEqual([key('a1', 'audit', T0 + 5)]);
        expect(await s.listSigningKeys('assertion')).toEqual([]);
      });

      it('retiring a use retires its current keys only, keeping earlier retirements', async () => {
        await s.insertSigningKey(key('t1', 'token', T0, T0 + 50));
        await s.insertSigningKey(key('t2', 'token', T0 + 1));
        await s.insertSigningKey(key('t3', 'token', T0 + 2, T0 + 5_000));
        await s.insertSigningKey(key('a1', 'audit', T0));
        await s.retireSigningKeys('token', T0 + 100);
        const retires = Object.fromEntries((await s.listSigningKeys('token')).map((k) => [k.kid, k.retiresAt]));
        expect(retires).toEqual({ t1: T0 + 50, t2: T0 + 100, t3: T0 + 100 });
        expect((await s.listSigningKeys('audit'))[0]?.retiresAt).toBeNull();
      });
    });

    describe('users', () => {
      it('are created with their roles (sorted), no groups, enabled, without an externalId', async () => {
        const u = await addUser('alice@example.com', ['viewer', 'admin']);
        const expected: UserRecord = {
          ...newUser('alice@example.com'),
          disabledAt: null,
          roles: ['admin', 'viewer'],
          groups: [],
          externalId: null,
        };
        expect(u).toEqual(expected);
        expect(await s.getUser(u.id)).toEqual(expected);
        expect(await s.getUserByWebauthnId(u.webauthnId)).toEqual(expected);
        expect(await s.getUser('nobody')).toBeNull();
        expect(await s.getUserByWebauthnId('nobody')).toBeNull();
        expect(await s.getUserByEmail('nobody@example.com')).toBeNull();
      });

      it('emails are case-insensitive: lookup, and an upsert returns the existing user (adding the roles)', async () => {
        const u = await addUser('Alice@Example.com', ['viewer']);
        expect((await s.getUserByEmail('alice@example.COM'))?.id).toBe(u.id);
        const again = await s.upsertUser(
          newUser('ALICE@EXAMPLE.COM', { id: 'other-id', webauthnId: 'other-handle', displayName: 'Other' }),
          ['admin'],
        );
        expect(again).toEqual({ ...u, roles: ['admin', 'viewer'] });
        expect(await s.getUser('other-id')).toBeNull();
        expect(await s.listUsers({ limit: 10 })).toHaveLength(1);
      });

      it('case folds only ASCII letters (SQLite NOCASE), in lookups, uniqueness and search', async () => {
        const upper = await addUser('ÉMILE@example.com', [], { id: 'u-up', webauthnId: 'wa-up', displayName: 'E' });
        const lower = await addUser('émile@example.com', [], { id: 'u-low', webauthnId: 'wa-low', displayName: 'e' });
        expect(lower.id).toBe('u-low');
        expect((await s.getUserByEmail('émile@EXAMPLE.COM'))?.id).toBe('u-low');
        expect((await s.getUserByEmail('ÉMILE@EXAMPLE.COM'))?.id).toBe(upper.id);
        expect(ids(await s.listUsers({ query: 'ÉMILE', limit: 10 }))).toEqual(['u-low']);
      });

      it('concurrent upserts of one email make one user, and all return it', async () => {
        // Each attempt has its own id and user handle, as real ones (random) do.
        const emails = ['bob@example.com', 'BOB@example.com', 'Bob@Example.com', 'bob@EXAMPLE.com'];
        const got = await race(
          s,
          emails.map((e, i) => () => s.upsertUser(newUser(e, { id: `b${i}`, webauthnId: `wa-b${i}` }), [`r${i}`])),
        );
        expect(new Set(got.map((u) => u.id)).size).toBe(1);
        const users = await s.listUsers({ limit: 10 });
        expect(users).toHaveLength(1);
        expect(users[0]?.roles).toEqual(['r0', 'r1', 'r2', 'r3']);
      });

      it('a clash on id or user handle is an error, not a merge', async () => {
        await addUser('alice@example.com');
        await expect(s.upsertUser(newUser('bob@example.com', { id: 'u:alice@example.com' }), [])).rejects.toThrow();
        await expect(
          s.upsertUser(newUser('bob@example.com', { webauthnId: 'wa:alice@example.com' }), []),
        ).rejects.toThrow();
        expect(await s.getUserByEmail('bob@example.com')).toBeNull();
      });

      it('updateUser changes what is given; null clears the externalId; an unknown user is false', async () => {
        const u = await addUser('alice@example.com');
        expect(await s.updateUser(u.id, { externalId: 'ext-1' })).toBe(true);
        expect(await s.updateUser(u.id, { email: 'alice@corp.example', displayName: 'Alice A.' })).toBe(true);
        expect(await s.getUser(u.id)).toMatchObject({
          email: 'alice@corp.example',
          displayName: 'Alice A.',
          externalId: 'ext-1',
          webauthnId: u.webauthnId,
        });
        expect((await s.getUserByEmail('ALICE@corp.example'))?.id).toBe(u.id);
        expect(await s.getUserByEmail('alice@example.com')).toBeNull();
        expect(await s.updateUser(u.id, {})).toBe(true);
        expect((await s.getUser(u.id))?.externalId).toBe('ext-1');
        expect(await s.updateUser(u.id, { externalId: null })).toBe(true);
        expect((await s.getUser(u.id))?.externalId).toBeNull();
        expect(await s.updateUser('nobody', { displayName: 'x' })).toBe(false);
      });

      it('updateUser refuses an email another user has, in any case', async () => {
        await addUser('alice@example.com');
        const bob = await addUser('bob@example.com');
        await expect(s.updateUser(bob.id, { email: 'ALICE@example.com' })).rejects.toThrow();
        expect((await s.getUser(bob.id))?.email).toBe('bob@example.com');
      });

      it('listUsers matches email or name case-insensitively, in email order, after a cursor, up to a limit', async () => {
        await addUser('bob@x.example');
        await addUser('Alice@x.example');
        await addUser('carol@y.example', [], { displayName: 'Carol Smith' });
        await addUser('dave_1@x.example');
        await addUser('erin@x.example', [], { displayName: '100% Erin' });
        const emails = async (o: Parameters<Store['listUsers']>[0]) => (await s.listUsers(o)).map((u) => u.email);
        expect(await emails({ limit: 10 })).toEqual([
          'Alice@x.example',
          'bob@x.example',
          'carol@y.example',
          'dave_1@x.example',
          'erin@x.example',
        ]);
        expect(await emails({ query: 'X.EXAMPLE', limit: 10 })).toEqual([
          'Alice@x.example',
          'bob@x.example',
          'dave_1@x.example',
          'erin@x.example',
        ]);
        expect(await emails({ query: 'SMITH', limit: 10 })).toEqual(['carol@y.example']);
        // LIKE's wildcards in the query are plain characters.
        expect(await emails({ query: '_', limit: 10 })).toEqual(['dave_1@x.example']);
        expect(await emails({ query: '%', limit: 10 })).toEqual(['erin@x.example']);
        expect(await emails({ after: 'ALICE@x.example', limit: 2 })).toEqual(['bob@x.example', 'carol@y.example']);
        expect(await emails({ query: 'x.example', after: 'bob@x.example', limit: 10 })).toEqual([
          'dave_1@x.example',
          'erin@x.example',
        ]);
        expect(await emails({ query: 'nobody', limit: 10 })).toEqual([]);
      });

      it('countUsersWithRole counts enabled users only; setUserDisabled disables and enables', async () => {
        const a = await addUser('a@example.com', ['admin']);
        await addUser('b@example.com', ['admin', 'viewer']);
        await addUser('c@example.com', ['viewer']);
        expect(await s.countUsersWithRole('admin')).toBe(2);
        expect(await s.setUserDisabled(a.id, T0 + 1)).toBe(true);
        expect((await s.getUser(a.id))?.disabledAt).toBe(T0 + 1);
        expect(await s.countUsersWithRole('admin')).toBe(1);
        expect(await s.setUserDisabled(a.id, null)).toBe(true);
        expect((await s.getUser(a.id))?.disabledAt).toBeNull();
        expect(await s.countUsersWithRole('admin')).toBe(2);
        expect(await s.countUsersWithRole('nobody')).toBe(0);
        expect(await s.setUserDisabled('nobody', T0)).toBe(false);
      });

      it('deleteUser removes keys, sessions, links, tokens, roles and memberships; auth events stay', async () => {
        const u = await addUser('alice@example.com', ['admin']);
        const other = await addUser('bob@example.com', ['admin']);
        await s.insertCredential(credential(u.id, 'cred-a'));
        await s.insertSession(session(u.id, 'sess-a'));
        await s.insertSession(session(other.id, 'sess-b'));
        await s.insertEnrollmentToken(enrollmentToken('tok-a', u.id));
        await s.linkUserIdentity('okta', 'sub-a', u.id, T0);
        await s.insertGroup(group('g1', 'eng'));
        await s.addGroupMember('g1', u.id, T0);
        await s.addGroupMember('g1', other.id, T0);
        await s.insertAuthEvent(authEvent('evt-a', { userId: u.id }));

        expect(await s.deleteUser(u.id)).toBe(true);
        expect(await s.getUser(u.id)).toBeNull();
        expect(await s.getCredential('cred-a')).toBeNull();
        expect(await s.getSession('sess-a')).toBeNull();
        expect(await s.getSession('sess-b')).not.toBeNull();
        expect(await s.getEnrollmentToken('tok-a')).toBeNull();
        expect(await s.findUserIdentity('okta', 'sub-a')).toBeNull();
        expect(await s.countUsersWithRole('admin')).toBe(1);
        expect(ids(await s.listGroupMembers('g1'))).toEqual([other.id]);
        expect((await s.listGroups())[0]?.members).toBe(1);
        expect(ids(await s.listAuthEvents({ userId: u.id, limit: 10 }))).toEqual(['evt-a']);
        expect(await s.deleteUser(u.id)).toBe(false);
        // The email is free again.
        expect((await addUser('ALICE@example.com')).email).toBe('ALICE@example.com');
      });
    });

    describe('groups and members', () => {
      it('insertGroup refuses a taken name or id; getGroup finds by id or name; listGroups counts members', async () => {
        expect(await s.insertGroup(group('g1', 'eng'))).toBe(true);
        expect(await s.insertGroup(group('g2', 'eng'))).toBe(false);
        expect(await s.insertGroup(group('g1', 'ops'))).toBe(false);
        expect(await s.insertGroup(group('g3', 'Eng'))).toBe(true);
        expect(await s.insertGroup(group('g4', 'data'))).toBe(true);
        expect(await s.getGroup('g1')).toEqual(group('g1', 'eng'));
        expect(await s.getGroup('eng')).toEqual(group('g1', 'eng'));
        expect(await s.getGroup('ENG')).toBeNull();
        expect(await s.getGroup('nothing')).toBeNull();
        const u = await addUser('alice@example.com');
        await s.addGroupMember('g4', u.id, T0);
        // Names sort byte-wise: upper case first.
        expect(await s.listGroups()).toEqual([
          { ...group('g3', 'Eng'), members: 0 },
          { ...group('g4', 'data'), members: 1 },
          { ...group('g1', 'eng'), members: 0 },
        ]);
      });

      it('getGroup prefers the group whose id matches over one whose name is that id', async () => {
        await s.insertGroup(group('g-by-name', 'x1'));
        await s.insertGroup(group('x1', 'other'));
        expect((await s.getGroup('x1'))?.id).toBe('x1');
        expect((await s.getGroup('g-by-name'))?.id).toBe('g-by-name');
      });

      it('updateGroup renames and sets or clears the externalId; members carry the new name', async () => {
        await s.insertGroup(group('g1', 'eng'));
        const u = await addUser('alice@example.com');
        await s.addGroupMember('g1', u.id, T0);
        expect(await s.updateGroup('g1', { name: 'engineering', externalId: 'ext-g' })).toBe(true);
        const renamed = { ...group('g1', 'eng'), name: 'engineering' };
        expect(await s.getGroup('g1')).toEqual({ ...renamed, externalId: 'ext-g' });
        expect((await s.getUser(u.id))?.groups).toEqual(['engineering']);
        expect(await s.updateGroup('g1', {})).toBe(true);
        expect((await s.getGroup('g1'))?.externalId).toBe('ext-g');
        expect(await s.updateGroup('g1', { externalId: null })).toBe(true);
        expect(await s.getGroup('g1')).toEqual(renamed);
        expect(await s.updateGroup('nope', { name: 'x' })).toBe(false);
      });

      it('members are added and removed once; a person carries their groups sorted; deleting a group ends memberships', async () => {
        await s.insertGroup(group('g1', 'zeta'));
        await s.insertGroup(group('g2', 'alpha'));
        const bob = await addUser('bob@example.com');
        const alice = await addUser('Alice@example.com');
        expect(await s.addGroupMember('g1', bob.id, T0)).toBe(true);
        expect(await s.addGroupMember('g1', bob.id, T0)).toBe(false);
        expect(await s.addGroupMember('g1', alice.id, T0)).toBe(true);
        expect(await s.addGroupMember('g2', bob.id, T0)).toBe(true);
        expect((await s.getUser(bob.id))?.groups).toEqual(['alpha', 'zeta']);
        expect((await s.getUserByEmail('bob@example.com'))?.groups).toEqual(['alpha', 'zeta']);
        // Members in email order, regardless of case.
        expect((await s.listGroupMembers('g1')).map((u) => u.email)).toEqual(['Alice@example.com', 'bob@example.com']);
        expect((await s.listGroupMembers('g1'))[1]?.groups).toEqual(['alpha', 'zeta']);
        expect(await s.removeGroupMember('g1', bob.id)).toBe(true);
        expect(await s.removeGroupMember('g1', bob.id)).toBe(false);
        expect((await s.getUser(bob.id))?.groups).toEqual(['alpha']);

        expect(await s.deleteGroup('g2')).toEqual(group('g2', 'alpha'));
        expect(await s.deleteGroup('g2')).toBeNull();
        expect(await s.getGroup('g2')).toBeNull();
        expect((await s.getUser(bob.id))?.groups).toEqual([]);
        expect(await s.listGroupMembers('g2')).toEqual([]);
      });
    });

    describe('credentials', () => {
      it('round-trip every field and list in creation order', async () => {
        const u = await addUser('alice@example.com');
        const c2 = credential(u.id, 'cred-2', {
          createdAt: T0 + 10,
          counter: 4_294_967_295,
          backupEligible: false,
          backedUp: true,
          uvInitialized: true,
          attested: true,
          attestationFmt: 'packed',
          transports: [],
          lastUsedAt: T0 + 11,
        });
        const c1 = credential(u.id, 'cred-1');
        await s.insertCredential(c2);
        await s.insertCredential(c1);
        const got = await s.getCredential('cred-1');
        expect(got).toEqual(c1);
        expect(got?.publicKey).toBeInstanceOf(Uint8Array);
        expect(await s.getCredential('cred-2')).toEqual(c2);
        expect(await s.listCredentials(u.id)).toEqual([c1, c2]);
        expect(await s.listCredentials('nobody')).toEqual([]);
        expect(await s.getCredential('nothing')).toBeNull();
      });

      it('a registered id, to anyone and revoked or not, is a DuplicateCredentialError', async () => {
        const a = await addUser('alice@example.com');
        const b = await addUser('bob@example.com');
        await s.insertCredential(credential(a.id, 'cred-1'));
        await expect(s.insertCredential(credential(b.id, 'cred-1'))).rejects.toBeInstanceOf(DuplicateCredentialError);
        await s.revokeCredential(a.id, 'cred-1', T0);
        await expect(s.insertCredential(credential(a.id, 'cred-1'))).rejects.toBeInstanceOf(DuplicateCredentialError);
        expect((await s.getCredential('cred-1'))?.userId).toBe(a.id);
      });

      it('rename and revoke only the owner’s live key; a clone mark keeps its first time', async () => {
        const a = await addUser('alice@example.com');
        const b = await addUser('bob@example.com');
        await s.insertCredential(credential(a.id, 'cred-1'));
        expect(await s.renameCredential(b.id, 'cred-1', 'stolen')).toBe(false);
        expect(await s.renameCredential(a.id, 'cred-1', 'Laptop')).toBe(true);
        expect((await s.getCredential('cred-1'))?.name).toBe('Laptop');

        await s.markCredentialCloned('cred-1', T0 + 1);
        await s.markCredentialCloned('cred-1', T0 + 2);
        expect((await s.getCredential('cred-1'))?.clonedAt).toBe(T0 + 1);

        expect(await s.revokeCredential(b.id, 'cred-1', T0 + 3)).toBe(false);
        expect(await s.revokeCredential(a.id, 'cred-1', T0 + 4)).toBe(true);
        expect(await s.revokeCredential(a.id, 'cred-1', T0 + 5)).toBe(false);
        expect((await s.getCredential('cred-1'))?.revokedAt).toBe(T0 + 4);
        expect(await s.renameCredential(a.id, 'cred-1', 'again')).toBe(false);
        expect((await s.getCredential('cred-1'))?.name).toBe('Laptop');
      });
    });

    describe('enrollment and recovery tokens', () => {
      it('round-trip, and are consumed once, only before they expire', async () => {
        const u = await addUser('alice@example.com');
        const t = enrollmentToken('tok-1', u.id);
        await s.insertEnrollmentToken(t);
        await s.insertEnrollmentToken(enrollmentToken('tok-old', u.id, { expiresAt: T0 + 10 }));
        expect(await s.getEnrollmentToken('tok-1')).toEqual(t);
        expect(await s.getEnrollmentToken('nothing')).toBeNull();
        expect(await s.consumeEnrollmentToken('tok-1', T0 + 5)).toBe(true);
        expect(await s.consumeEnrollmentToken('tok-1', T0 + 6)).toBe(false);
        expect((await s.getEnrollmentToken('tok-1'))?.usedAt).toBe(T0 + 5);
        expect(await s.consumeEnrollmentToken('tok-old', T0 + 10)).toBe(false);
        expect((await s.getEnrollmentToken('tok-old'))?.usedAt).toBeNull();
        expect(await s.consumeEnrollmentToken('nothing', T0)).toBe(false);
      });

      it('two concurrent consumes of one token: exactly one succeeds', async () => {
        const u = await addUser('alice@example.com');
        await s.insertEnrollmentToken(enrollmentToken('tok-1', u.id));
        const results = await race(
          s,
          [1, 2, 3, 4].map((i) => () => s.consumeEnrollmentToken('tok-1', T0 + i)),
        );
        expect(count(results, true)).toBe(1);
        expect((await s.getEnrollmentToken('tok-1'))?.usedAt).toBe(T0 + 1 + results.indexOf(true));
      });

      it('hasUsableRecoveryToken wants an unused, unexpired recovery token of that user', async () => {
        const u = await addUser('alice@example.com');
        const other = await addUser('bob@example.com');
        await s.insertEnrollmentToken(enrollmentToken('enroll', u.id));
        await s.insertEnrollmentToken(enrollmentToken('rec-other', other.id, { kind: 'recovery' }));
        expect(await s.hasUsableRecoveryToken(u.id, T0)).toBe(false);
        await s.insertEnrollmentToken(enrollmentToken('rec', u.id, { kind: 'recovery', expiresAt: T0 + 100 }));
        expect(await s.hasUsableRecoveryToken(u.id, T0)).toBe(true);
        expect(await s.hasUsableRecoveryToken(u.id, T0 + 100)).toBe(false);
        await s.consumeEnrollmentToken('rec', T0 + 1);
        expect(await s.hasUsableRecoveryToken(u.id, T0 + 2)).toBe(false);
      });
    });

    describe('WebAuthn challenges', () => {
      it('a challenge is taken once, with what was stored', async () => {
        const c = challenge('ch-1', { kind: 'registration', userId: 'u1', enrollmentHash: 'eh' });
        await s.insertChallenge(c);
        expect(await s.takeChallenge('ch-1')).toEqual(c);
        expect(await s.takeChallenge('ch-1')).toBeNull();
        expect(await s.takeChallenge('never')).toBeNull();
      });

      it('an expired challenge is still taken, so the ceremony can say it expired', async () => {
        const c = challenge('ch-old', { expiresAt: Date.now() - 1_000, allowIds: [] });
        await s.insertChallenge(c);
        expect(await s.takeChallenge('ch-old')).toEqual(c);
      });

      it('concurrent takes of one challenge: exactly one gets it', async () => {
        await s.insertChallenge(challenge('ch-race'));
        const got = await race(
          s,
          [1, 2, 3, 4].map(() => () => s.takeChallenge('ch-race')),
        );
        expect(got.filter((c) => c !== null)).toHaveLength(1);
      });
    });

    describe('completeLogin', () => {
      const login = (o: { expected: number; counter: number; event: string; session: string; end?: string }) => ({
        credentialId: 'cred-1',
        expectedCounter: o.expected,
        use: { counter: o.counter, backedUp: true, uv: true, at: T0 + 100 },
        event: authEvent(o.event, { userId: 'u:alice@example.com', credentialId: 'cred-1', uv: true }),
        session: session('u:alice@example.com', o.session, { credentialId: 'cred-1', createdAt: T0 + 100 }),
        endSessionHash: o.end ?? null,
      });

      beforeEach(async () => {
        await addUser('alice@example.com');
        await s.insertCredential(credential('u:alice@example.com', 'cred-1', { counter: 5 }));
        await s.insertSession(session('u:alice@example.com', 'old-session'));
      });

      it('moves the counter, records the event, ends the previous session and starts the new one', async () => {
        expect(
          await s.completeLogin(login({ expected: 5, counter: 6, event: 'e1', session: 's1', end: 'old-session' })),
        ).toBe(true);
        expect(await s.getCredential('cred-1')).toMatchObject({
          counter: 6,
          backedUp: true,
          uvInitialized: true,
          lastUsedAt: T0 + 100,
        });
        expect(ids(await s.listAuthEvents({ limit: 10 }))).toEqual(['e1']);
        expect((await s.getSession('old-session'))?.revokedAt).toBe(T0 + 100);
        expect(await s.getSession('s1')).toEqual(
          login({ expected: 5, counter: 6, event: 'e1', session: 's1' }).session,
        );

        // uvInitialized, once true, stays true after a login without UV.
        const noUv = login({ expected: 6, counter: 7, event: 'e2', session: 's2' });
        expect(await s.completeLogin({ ...noUv, use: { ...noUv.use, uv: false, backedUp: false } })).toBe(true);
        expect(await s.getCredential('cred-1')).toMatchObject({ counter: 7, backedUp: false, uvInitialized: true });
      });

      it('an already-ended previous session keeps its end time', async () => {
        await s.revokeSession('old-session', T0 + 1);
        expect(
          await s.completeLogin(login({ expected: 5, counter: 6, event: 'e1', session: 's1', end: 'old-session' })),
        ).toBe(true);
        expect((await s.getSession('old-session'))?.revokedAt).toBe(T0 + 1);
      });

      it('when the counter moved (or the key is revoked): false, and nothing is written', async () => {
        const before = await s.getCredential('cred-1');
        expect(
          await s.completeLogin(login({ expected: 4, counter: 6, event: 'e1', session: 's1', end: 'old-session' })),
        ).toBe(false);
        expect(await s.getCredential('cred-1')).toEqual(before);
        expect(await s.listAuthEvents({ limit: 10 })).toEqual([]);
        expect(await s.getSession('s1')).toBeNull();
        expect((await s.getSession('old-session'))?.revokedAt).toBeNull();

        await s.revokeCredential('u:alice@example.com', 'cred-1', T0 + 1);
        expect(await s.completeLogin(login({ expected: 5, counter: 6, event: 'e2', session: 's2' }))).toBe(false);
        expect(await s.getSession('s2')).toBeNull();
      });

      it('two concurrent logins expecting the same counter: exactly one wins, and the loser wrote nothing', async () => {
        const attempts = [1, 2, 3].map((i) =>
          login({ expected: 5, counter: 5 + i, event: `e${i}`, session: `s${i}`, end: 'old-session' }),
        );
        const results = await race(
          s,
          attempts.map((a) => () => s.completeLogin(a)),
        );
        expect(count(results, true)).toBe(1);
        const w = results.indexOf(true);
        expect((await s.getCredential('cred-1'))?.counter).toBe(6 + w);
        expect(ids(await s.listAuthEvents({ limit: 10 }))).toEqual([`e${w + 1}`]);
        for (const [i, a] of attempts.entries()) {
          expect(await s.getSession(a.session.idHash)).toEqual(i === w ? a.session : null);
        }
      });
    });

    describe('agent grants', () => {
      const grant = (id: string, o: Partial<AgentGrantRecord> = {}): AgentGrantRecord => ({
        id,
        userId: 'u:alice@example.com',
        agentId: 'sp-agent',
        actions: ['serving:invoke', 'mlflow:read'],
        createdAt: T0,
        expiresAt: T0 + 8 * 3_600_000,
        revokedAt: null,
        ...o,
      });

      it('round-trip; listed per person newest first; revoked once, only by their person', async () => {
        await s.insertAgentGrant(grant('g1'));
        await s.insertAgentGrant(grant('g2', { createdAt: T0 + 10, actions: [] }));
        await s.insertAgentGrant(grant('g3', { userId: 'u:bob@example.com', createdAt: T0 + 20 }));
        expect(await s.getAgentGrant('g1')).toEqual(grant('g1'));
        expect(await s.getAgentGrant('nope')).toBeNull();
        expect((await s.listAgentGrants('u:alice@example.com')).map((g) => g.id)).toEqual(['g2', 'g1']);
        expect(await s.revokeAgentGrant('u:bob@example.com', 'g1', T0 + 5)).toBe(false);
        expect(await s.revokeAgentGrant('u:alice@example.com', 'g1', T0 + 5)).toBe(true);
        expect(await s.revokeAgentGrant('u:alice@example.com', 'g1', T0 + 6)).toBe(false);
        expect((await s.getAgentGrant('g1'))?.revokedAt).toBe(T0 + 5);
      });
    });

    describe('approvals', () => {
      const approval = (id: string, o: Partial<ApprovalRecord> = {}): ApprovalRecord => ({
        id,
        userId: 'u:alice@example.com',
        agentId: 'sp-agent',
        grantId: 'g1',
        upstream: 'workspace',
        method: 'PUT',
        path: '/api/2.0/serving-endpoints/chat/config',
        query: '',
        action: 'serving:manage',
        resource: 'Endpoint::chat',
        contentType: 'application/json',
        body: new Uint8Array(Buffer.from('{"served_entities":[]}')),
        bodySha256: 'b'.repeat(64),
        digest: 'd'.repeat(64),
        status: 'pending',
        createdAt: T0,
        expiresAt: T0 + 600_000,
        decidedAt: null,
        credentialId: null,
        eventId: null,
        usedAt: null,
        ...o,
      });
      const tap = (
        approvalId: string,
        o: { expected?: number; counter?: number; at?: number; event?: string } = {},
      ) => ({
        approvalId,
        userId: 'u:alice@example.com',
        credentialId: 'cred-1',
        expectedCounter: o.expected ?? 5,
        use: { counter: o.counter ?? 6, backedUp: false, uv: true, at: o.at ?? T0 + 100 },
        event: authEvent(o.event ?? 'e-approve', { kind: 'approval.approve', userId: 'u:alice@example.com' }),
      });

      beforeEach(async () => {
        await addUser('alice@example.com');
        await s.insertCredential(credential('u:alice@example.com', 'cred-1', { counter: 5 }));
      });

      it('round-trip every field (the body byte for byte); listed per person newest first', async () => {
        await s.insertApproval(approval('a1'));
        await s.insertApproval(approval('a2', { createdAt: T0 + 1, body: new Uint8Array([0, 255, 10]) }));
        await s.insertApproval(approval('a3', { userId: 'u:bob@example.com', createdAt: T0 + 2 }));
        expect(await s.getApproval('a1')).toEqual(approval('a1'));
        expect((await s.getApproval('a2'))?.body).toEqual(new Uint8Array([0, 255, 10]));
        expect(await s.getApproval('nope')).toBeNull();
        expect((await s.listApprovals('u:alice@example.com', 10)).map((a) => a.id)).toEqual(['a2', 'a1']);
        expect((await s.listApprovals('u:alice@example.com', 1)).map((a) => a.id)).toEqual(['a2']);
      });

      it('a tap approves a pending approval: counter, event and status together; then used once, with its digest', async () => {
        await s.insertApproval(approval('a1'));
        expect(await s.approveWithCredential(tap('a1'))).toBe(true);
        expect(await s.getApproval('a1')).toMatchObject({
          status: 'approved',
          decidedAt: T0 + 100,
          credentialId: 'cred-1',
          eventId: 'e-approve',
        });
        expect((await s.getCredential('cred-1'))?.counter).toBe(6);
        expect(ids(await s.listAuthEvents({ limit: 10 }))).toEqual(['e-approve']);
        // A second tap on it: not pending any more.
        expect(await s.approveWithCredential(tap('a1', { expected: 6, counter: 7, event: 'e2' }))).toBe(false);
        // Used: only with its digest, only once, only before it expires.
        expect(await s.useApproval('a1', 'e'.repeat(64), T0 + 200)).toBe(false);
        expect(await s.useApproval('a1', 'd'.repeat(64), T0 + 200)).toBe(true);
        expect(await s.useApproval('a1', 'd'.repeat(64), T0 + 201)).toBe(false);
        expect(await s.getApproval('a1')).toMatchObject({ status: 'used', usedAt: T0 + 200 });
      });

      it('nothing is written when the approval is not pending, expired, another’s, or the counter moved', async () => {
        await s.insertApproval(approval('denied'));
        expect(await s.denyApproval('denied', 'u:bob@example.com', T0 + 1)).toBe(false);
        expect(await s.denyApproval('denied', 'u:alice@example.com', T0 + 1)).toBe(true);
        expect(await s.denyApproval('denied', 'u:alice@example.com', T0 + 2)).toBe(false);
        await s.insertApproval(approval('old', { expiresAt: T0 + 50 }));
        await s.insertApproval(approval('bobs', { userId: 'u:bob@example.com' }));
        await s.insertApproval(approval('fine'));
        const before = await s.getCredential('cred-1');
        for (const id of ['denied', 'old', 'bobs']) expect(await s.approveWithCredential(tap(id)), id).toBe(false);
        expect(await s.approveWithCredential(tap('fine', { expected: 4 })), 'counter moved').toBe(false);
        expect(await s.getCredential('cred-1')).toEqual(before);
        expect(await s.listAuthEvents({ limit: 10 })).toEqual([]);
        expect((await s.getApproval('fine'))?.status).toBe('pending');
        // Not approved, not usable; an expired approval cannot be used or denied either.
        expect(await s.useApproval('fine', 'd'.repeat(64), T0 + 1)).toBe(false);
        expect(await s.denyApproval('old', 'u:alice@example.com', T0 + 60)).toBe(false);
      });

      it('an approved request raced on two replicas is used exactly once', async () => {
        await s.insertApproval(approval('a1'));
        expect(await s.approveWithCredential(tap('a1'))).toBe(true);
        const wins = await race(
          s,
          [1, 2, 3, 4, 5, 6].map((n) => () => s.useApproval('a1', 'd'.repeat(64), T0 + 300 + n)),
        );
        expect(wins.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('sessions', () => {
      it('round-trip with and without an identity provider part', async () => {
        const u = await addUser('alice@example.com');
        const plain = session(u.id, 's1', { uv: false });
        const idp = {
          provider: 'okta',
          eventId: 'evt-idp',
          groups: ['eng', 'ops'],
          groupsAt: T0 + 1,
          refresh: null,
        };
        const withIdp = session(u.id, 's2', { credentialId: '', idp });
        await s.insertSession(plain);
        await s.insertSession(withIdp);
        const got = await s.getSession('s1');
        expect(got).toEqual(plain);
        expect(got !== null && 'idp' in got).toBe(false);
        expect(await s.getSession('s2')).toEqual(withIdp);
        expect(await s.getSession('nothing')).toBeNull();

        const refreshed = { ...idp, groups: ['eng'], groupsAt: T0 + 50, refresh: 'sealed' };
        await s.setSessionIdp('s1', refreshed);
        expect((await s.getSession('s1'))?.idp).toEqual(refreshed);
      });

      it('touch never moves back; revoke keeps the first end', async () => {
        const u = await addUser('alice@example.com');
        await s.insertSession(session(u.id, 's1'));
        await s.touchSession('s1', T0 + 10);
        await s.touchSession('s1', T0 + 5);
        expect((await s.getSession('s1'))?.lastSeenAt).toBe(T0 + 10);
        await s.revokeSession('s1', T0 + 20);
        await s.revokeSession('s1', T0 + 30);
        expect((await s.getSession('s1'))?.revokedAt).toBe(T0 + 20);
      });

      it("revoking a user's or a key's sessions ends only live ones and returns them", async () => {
        const a = await addUser('alice@example.com');
        const b = await addUser('bob@example.com');
        await s.insertSession(session(a.id, 'a1', { credentialId: 'ka' }));
        await s.insertSession(session(a.id, 'a2', { credentialId: 'kb' }));
        await s.insertSession(session(a.id, 'a3', { credentialId: 'ka', revokedAt: T0 }));
        await s.insertSession(session(b.id, 'b1', { credentialId: 'kb' }));
        expect((await s.revokeCredentialSessions('kb', T0 + 1)).sort()).toEqual(['a2', 'b1']);
        expect(await s.revokeCredentialSessions('kb', T0 + 2)).toEqual([]);
        expect((await s.revokeUserSessions(a.id, T0 + 3)).sort()).toEqual(['a1']);
        expect(await s.revokeUserSessions(a.id, T0 + 4)).toEqual([]);
        const ends = Object.fromEntries(
          await Promise.all(['a1', 'a2', 'a3', 'b1'].map(async (h) => [h, (await s.getSession(h))?.revokedAt])),
        );
        expect(ends).toEqual({ a1: T0 + 3, a2: T0 + 1, a3: T0, b1: T0 + 1 });
      });

      it('listSessions gives live sessions, most recently seen first, for one user or all, up to a limit', async () => {
        const a = await addUser('alice@example.com');
        const b = await addUser('bob@example.com');
        await s.insertSession(session(a.id, 'a-old', { lastSeenAt: T0 + 1 }));
        await s.insertSession(session(a.id, 'a-new', { lastSeenAt: T0 + 3 }));
        await s.insertSession(session(a.id, 'a-ended', { lastSeenAt: T0 + 4, revokedAt: T0 + 4 }));
        await s.insertSession(session(a.id, 'a-expired', { lastSeenAt: T0 + 5, expiresAt: T0 + 100 }));
        await s.insertSession(session(b.id, 'b', { lastSeenAt: T0 + 2 }));
        const hashes = async (o: Parameters<Store['listSessions']>[0]) =>
          (await s.listSessions(o)).map((x) => x.idHash);
        expect(await hashes({ liveAt: T0 + 100, limit: 10 })).toEqual(['a-new', 'b', 'a-old']);
        expect(await hashes({ liveAt: T0 + 99, limit: 10 })).toEqual(['a-expired', 'a-new', 'b', 'a-old']);
        expect(await hashes({ userId: a.id, liveAt: T0 + 100, limit: 10 })).toEqual(['a-new', 'a-old']);
        expect(await hashes({ liveAt: T0 + 100, limit: 2 })).toEqual(['a-new', 'b']);
        expect(await hashes({ userId: 'nobody', liveAt: T0, limit: 10 })).toEqual([]);
      });
    });

    describe('identity provider accounts', () => {
      it('link, find, and re-link (which keeps the first user)', async () => {
        const a = await addUser('alice@example.com');
        const b = await addUser('bob@example.com');
        expect(await s.findUserIdentity('okta', 'sub-1')).toBeNull();
        await s.linkUserIdentity('okta', 'sub-1', a.id, T0);
        await s.linkUserIdentity('entra', 'sub-1', b.id, T0);
        expect(await s.findUserIdentity('okta', 'sub-1')).toBe(a.id);
        expect(await s.findUserIdentity('entra', 'sub-1')).toBe(b.id);
        await s.linkUserIdentity('okta', 'sub-1', b.id, T0 + 1);
        expect(await s.findUserIdentity('okta', 'sub-1')).toBe(a.id);
        expect(await s.findUserIdentity('okta', 'sub-2')).toBeNull();
      });
    });

    describe('auth events', () => {
      it('are listed newest first (ties: last recorded first), by user or all, up to a limit', async () => {
        const full = authEvent('e1', {
          at: T0 + 1,
          outcome: 'failure',
          reason: 'counter',
          userId: 'u1',
          credentialId: 'c1',
          aaguid: 'aa',
          authenticator: 'Key',
          uv: true,
          backupEligible: false,
          backedUp: true,
        });
        await s.insertAuthEvent(full);
        await s.insertAuthEvent(authEvent('e2', { at: T0 + 2, userId: 'u2' }));
        await s.insertAuthEvent(authEvent('e3', { at: T0 + 2, userId: 'u1' }));
        // Not stored: they travel to the audit log only.
        await s.insertAuthEvent({ ...authEvent('e0', { at: T0 }), principalType: 'user', via: 'x' });
        expect(ids(await s.listAuthEvents({ limit: 10 }))).toEqual(['e3', 'e2', 'e1', 'e0']);
        expect(ids(await s.listAuthEvents({ limit: 2 }))).toEqual(['e3', 'e2']);
        expect(await s.listAuthEvents({ userId: 'u1', limit: 10 })).toEqual([
          authEvent('e3', { at: T0 + 2, userId: 'u1' }),
          full,
        ]);
        expect((await s.listAuthEvents({ limit: 10 }))[3]).toEqual(authEvent('e0', { at: T0 }));
      });
    });

    describe('OAuth artifacts', () => {
      it('are found by id, user code or interaction uid while unexpired, per model', async () => {
        const code = artifact('a1', { grantId: 'g1', userCode: 'ABCD-EFGH', uid: 'int-1' });
        const forever = artifact('a2', { model: 'Grant', expiresAt: null });
        await s.upsertOAuthArtifact(code);
        await s.upsertOAuthArtifact(forever);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'id', 'a1', T0)).toEqual(code);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'userCode', 'ABCD-EFGH', T0)).toEqual(code);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'uid', 'int-1', T0)).toEqual(code);
        expect(await s.findOAuthArtifact('DeviceCode', 'id', 'a1', T0)).toBeNull();
        expect(await s.findOAuthArtifact('AuthorizationCode', 'id', 'a1', T0 + 60_000)).toBeNull();
        expect(await s.findOAuthArtifact('Grant', 'id', 'a2', Number.MAX_SAFE_INTEGER)).toEqual(forever);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'uid', 'nope', T0)).toBeNull();
      });

      it('upsert replaces the payload but not the consumption; consume keeps its first time; destroy deletes', async () => {
        await s.upsertOAuthArtifact(artifact('a1'));
        expect(await s.consumeOAuthArtifact('AuthorizationCode', 'a1', T0 + 1)).toBe(true);
        expect(await s.consumeOAuthArtifact('AuthorizationCode', 'a1', T0 + 2)).toBe(false);
        expect((await s.findOAuthArtifact('AuthorizationCode', 'id', 'a1', T0))?.consumedAt).toBe(T0 + 1);
        expect(await s.consumeOAuthArtifact('AuthorizationCode', 'no-such-code', T0 + 3)).toBe(false);
        const next = artifact('a1', { payload: '{"v":2}', grantId: 'g9', expiresAt: T0 + 120_000 });
        await s.upsertOAuthArtifact(next);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'id', 'a1', T0)).toEqual({ ...next, consumedAt: T0 + 1 });
        await s.destroyOAuthArtifact('AuthorizationCode', 'a1');
        expect(await s.findOAuthArtifact('AuthorizationCode', 'id', 'a1', T0)).toBeNull();
      });

      it('consume is single use under a race: exactly one caller wins', async () => {
        await s.upsertOAuthArtifact(artifact('rt1', { model: 'RefreshToken' }));
        const wins = await race(
          s,
          [1, 2, 3, 4].map((n) => () => s.consumeOAuthArtifact('RefreshToken', 'rt1', T0 + n)),
        );
        expect(wins.filter(Boolean)).toHaveLength(1);
      });

      it('insertIfAbsent: once while one lives, again after it expired; never over one without expiry', async () => {
        expect(await s.insertOAuthArtifactIfAbsent(artifact('j1', { model: 'Replay' }), T0)).toBe(true);
        expect(await s.insertOAuthArtifactIfAbsent(artifact('j1', { model: 'Replay', payload: '{"v":2}' }), T0)).toBe(
          false,
        );
        expect((await s.findOAuthArtifact('Replay', 'id', 'j1', T0))?.payload).toBe('{"id":"j1"}');
        // Another model is another key.
        expect(await s.insertOAuthArtifactIfAbsent(artifact('j1', { model: 'Other' }), T0)).toBe(true);
        const later = artifact('j1', { model: 'Replay', payload: '{"v":3}', expiresAt: T0 + 200_000 });
        expect(await s.insertOAuthArtifactIfAbsent(later, T0 + 60_000)).toBe(true);
        expect(await s.findOAuthArtifact('Replay', 'id', 'j1', T0 + 60_000)).toEqual(later);
        await s.upsertOAuthArtifact(artifact('k1', { expiresAt: null }));
        expect(await s.insertOAuthArtifactIfAbsent(artifact('k1'), Number.MAX_SAFE_INTEGER)).toBe(false);
      });

      it('concurrent insertIfAbsent of one id: exactly one succeeds', async () => {
        const results = await race(
          s,
          [1, 2, 3, 4, 5].map(
            (i) => () => s.insertOAuthArtifactIfAbsent(artifact('jti-race', { payload: `{"i":${i}}` }), T0),
          ),
        );
        expect(count(results, true)).toBe(1);
        expect((await s.findOAuthArtifact('AuthorizationCode', 'id', 'jti-race', T0))?.payload).toBe(
          `{"i":${results.indexOf(true) + 1}}`,
        );
      });

      it("revokeOAuthGrant deletes the grant's artifacts and the grant itself, and counts them", async () => {
        await s.upsertOAuthArtifact(artifact('g1', { model: 'Grant' }));
        await s.upsertOAuthArtifact(artifact('c1', { grantId: 'g1' }));
        await s.upsertOAuthArtifact(artifact('r1', { model: 'RefreshToken', grantId: 'g1' }));
        await s.upsertOAuthArtifact(artifact('r2', { model: 'RefreshToken', grantId: 'g2' }));
        await s.upsertOAuthArtifact(artifact('g1', { model: 'Session' }));
        expect(await s.revokeOAuthGrant('g1')).toBe(3);
        expect(await s.findOAuthArtifact('Grant', 'id', 'g1', T0)).toBeNull();
        expect(await s.findOAuthArtifact('RefreshToken', 'id', 'r1', T0)).toBeNull();
        expect(await s.findOAuthArtifact('RefreshToken', 'id', 'r2', T0)).not.toBeNull();
        expect(await s.findOAuthArtifact('Session', 'id', 'g1', T0)).not.toBeNull();
        expect(await s.revokeOAuthGrant('g1')).toBe(0);
      });

      it('purge deletes expired artifacts only, and counts them', async () => {
        await s.upsertOAuthArtifact(artifact('old', { expiresAt: T0 }));
        await s.upsertOAuthArtifact(artifact('live', { expiresAt: T0 + 1 }));
        await s.upsertOAuthArtifact(artifact('forever', { expiresAt: null }));
        expect(await s.purgeOAuthArtifacts(T0)).toBe(1);
        expect(await s.purgeOAuthArtifacts(T0)).toBe(0);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'id', 'live', T0)).not.toBeNull();
        expect(await s.purgeOAuthArtifacts(Number.MAX_SAFE_INTEGER)).toBe(1);
        expect(await s.findOAuthArtifact('AuthorizationCode', 'id', 'forever', T0)).not.toBeNull();
      });

      it('listOAuthGrants gives live grants, newest first, by account, up to a limit', async () => {
        const grant = (id: string, accountId: string, iat: number, expiresAt: number | null = T0 + 60_000) =>
          artifact(id, {
            model: 'Grant',
            payload: JSON.stringify({ accountId, clientId: `client-${id}`, iat, exp: iat + 60 }),
            expiresAt,
          });
        await s.upsertOAuthArtifact(grant('g1', 'alice', 1_000));
        await s.upsertOAuthArtifact(grant('g2', 'bob', 3_000, null));
        await s.upsertOAuthArtifact(grant('g3', 'alice', 2_000));
        await s.upsertOAuthArtifact(grant('g4', 'alice', 4_000, T0));
        await s.upsertOAuthArtifact(artifact('c1', { payload: JSON.stringify({ accountId: 'alice', iat: 9_000 }) }));
        expect(await s.listOAuthGrants({ now: T0, limit: 10 })).toEqual([
          { id: 'g2', accountId: 'bob', clientId: 'client-g2', createdAt: 3_000_000, expiresAt: null },
          { id: 'g3', accountId: 'alice', clientId: 'client-g3', createdAt: 2_000_000, expiresAt: T0 + 60_000 },
          { id: 'g1', accountId: 'alice', clientId: 'client-g1', createdAt: 1_000_000, expiresAt: T0 + 60_000 },
        ]);
        expect(ids(await s.listOAuthGrants({ accountId: 'alice', now: T0, limit: 10 }))).toEqual(['g3', 'g1']);
        expect(ids(await s.listOAuthGrants({ accountId: 'alice', now: T0 - 1, limit: 10 }))).toEqual([
          'g4',
          'g3',
          'g1',
        ]);
        expect(ids(await s.listOAuthGrants({ now: T0, limit: 1 }))).toEqual(['g2']);
        expect(await s.listOAuthGrants({ accountId: 'carol', now: T0, limit: 10 })).toEqual([]);
      });
    });

    describe('service principals', () => {
      it('round-trip, are found by id or name (case-insensitively), listed by name; names are unique in any case', async () => {
        const b = servicePrincipal('sp-b', 'batch-jobs', { jwks: '{"keys":[]}' });
        const a = servicePrincipal('sp-a', 'Airflow');
        const c = servicePrincipal('sp-c', 'ci');
        await s.insertServicePrincipal(b);
        await s.insertServicePrincipal(c);
        await s.insertServicePrincipal(a);
        expect(await s.getServicePrincipal('sp-b')).toEqual(b);
        expect(await s.getServicePrincipalByName('AIRFLOW')).toEqual(a);
        expect(await s.getServicePrincipal('nothing')).toBeNull();
        expect(await s.getServicePrincipalByName('nothing')).toBeNull();
        expect(await s.listServicePrincipals()).toEqual([a, b, c]);
        await expect(s.insertServicePrincipal(servicePrincipal('sp-d', 'CI'))).rejects.toThrow();
      });

      it('jwks are set and cleared; disabling happens once', async () => {
        await s.insertServicePrincipal(servicePrincipal('sp-1', 'one'));
        expect(await s.setServicePrincipalJwks('sp-1', '{"keys":[1]}')).toBe(true);
        expect((await s.getServicePrincipal('sp-1'))?.jwks).toBe('{"keys":[1]}');
        expect(await s.setServicePrincipalJwks('sp-1', null)).toBe(true);
        expect((await s.getServicePrincipal('sp-1'))?.jwks).toBeNull();
        expect(await s.setServicePrincipalJwks('nothing', null)).toBe(false);
        expect(await s.disableServicePrincipal('sp-1', T0 + 1)).toBe(true);
        expect(await s.disableServicePrincipal('sp-1', T0 + 2)).toBe(false);
        expect((await s.getServicePrincipal('sp-1'))?.disabledAt).toBe(T0 + 1);
        expect(await s.disableServicePrincipal('nothing', T0)).toBe(false);
      });

      it('secrets are listed newest first and revoked once, only through their principal', async () => {
        await s.insertServicePrincipal(servicePrincipal('sp-1', 'one'));
        await s.insertServicePrincipal(servicePrincipal('sp-2', 'two'));
        const secret = (id: string, spId: string, createdAt: number) => ({
          id,
          spId,
          hash: `scrypt$${id}`,
          createdAt,
          expiresAt: createdAt + 1_000,
          revokedAt: null,
        });
        await s.insertServicePrincipalSecret(secret('s1', 'sp-1', T0));
        await s.insertServicePrincipalSecret(secret('s2', 'sp-1', T0 + 10));
        await s.insertServicePrincipalSecret(secret('s3', 'sp-2', T0 + 5));
        expect(await s.listServicePrincipalSecrets('sp-1')).toEqual([
          secret('s2', 'sp-1', T0 + 10),
          secret('s1', 'sp-1', T0),
        ]);
        expect(await s.revokeServicePrincipalSecret('sp-2', 's1', T0 + 20)).toBe(false);
        expect(await s.revokeServicePrincipalSecret('sp-1', 's1', T0 + 20)).toBe(true);
        expect(await s.revokeServicePrincipalSecret('sp-1', 's1', T0 + 30)).toBe(false);
        expect((await s.listServicePrincipalSecrets('sp-1'))[1]?.revokedAt).toBe(T0 + 20);
        expect(await s.listServicePrincipalSecrets('nothing')).toEqual([]);
      });
    });

    describe('revocations', () => {
      it('are listed from a time on, oldest first (ties in recorded order); a repeat keeps the later expiry', async () => {
        await s.insertRevocation({ id: 'jti:c', revokedAt: T0 + 2, expiresAt: T0 + 100 });
        await s.insertRevocation({ id: 'jti:a', revokedAt: T0 + 1, expiresAt: T0 + 100 });
        await s.insertRevocation({ id: 'jti:z', revokedAt: T0 + 2, expiresAt: T0 + 100 });
        await s.insertRevocation({ id: 'grant:b', revokedAt: T0 + 2, expiresAt: T0 + 100 });
        await s.insertRevocation({ id: 'jti:old', revokedAt: T0, expiresAt: T0 + 10 });
        expect((await s.listRevocationsSince(T0 + 1)).map((r) => r.id)).toEqual(['jti:a', 'jti:c', 'jti:z', 'grant:b']);
        expect((await s.listRevocationsSince(T0 + 3)).map((r) => r.id)).toEqual([]);

        await s.insertRevocation({ id: 'jti:a', revokedAt: T0 + 50, expiresAt: T0 + 500 });
        await s.insertRevocation({ id: 'jti:c', revokedAt: T0 + 50, expiresAt: T0 + 5 });
        const all = await s.listRevocationsSince(0);
        expect(all.find((r) => r.id === 'jti:a')).toEqual({ id: 'jti:a', revokedAt: T0 + 1, expiresAt: T0 + 500 });
        expect(all.find((r) => r.id === 'jti:c')).toEqual({ id: 'jti:c', revokedAt: T0 + 2, expiresAt: T0 + 100 });
      });

      it('purge deletes those expired at `now`, and counts them', async () => {
        await s.insertRevocation({ id: 'jti:a', revokedAt: T0, expiresAt: T0 + 10 });
        await s.insertRevocation({ id: 'jti:b', revokedAt: T0, expiresAt: T0 + 20 });
        expect(await s.purgeRevocations(T0 + 10)).toBe(1);
        expect(await s.purgeRevocations(T0 + 10)).toBe(0);
        expect((await s.listRevocationsSince(0)).map((r) => r.id)).toEqual(['jti:b']);
      });
    });

    describe('role bindings', () => {
      it('are listed by subject type, subject and role; a repeat is false; delete returns the binding', async () => {
        const binding = (id: string, subjectType: 'group' | 'user', subject: string, role: string) => ({
          id,
          subjectType,
          subject,
          role,
          createdAt: T0,
          createdBy: 'admin',
        });
        expect(await s.insertRoleBinding(binding('b1', 'user', 'bob@example.com', 'admin'))).toBe(true);
        expect(await s.insertRoleBinding(binding('b2', 'group', 'eng', 'viewer'))).toBe(true);
        expect(await s.insertRoleBinding(binding('b3', 'group', 'eng', 'admin'))).toBe(true);
        expect(await s.insertRoleBinding(binding('b4', 'group', 'Data', 'viewer'))).toBe(true);
        expect(await s.insertRoleBinding(binding('b5', 'group', 'eng', 'viewer'))).toBe(false);
        expect(ids(await s.listRoleBindings())).toEqual(['b4', 'b3', 'b2', 'b1']);
        expect(await s.deleteRoleBinding('b3')).toEqual(binding('b3', 'group', 'eng', 'admin'));
        expect(await s.deleteRoleBinding('b3')).toBeNull();
        expect(ids(await s.listRoleBindings())).toEqual(['b4', 'b2', 'b1']);
        expect(await s.insertRoleBinding(binding('b6', 'group', 'eng', 'admin'))).toBe(true);
      });
    });

    describe('SCIM tokens', () => {
      it('are found by hash (revoked or not), listed oldest first, revoked once and touched', async () => {
        const token = (id: string, createdAt: number) => ({
          id,
          name: `token ${id}`,
          hash: `hash-${id}`,
          createdAt,
          createdBy: 'admin',
          lastUsedAt: null,
          revokedAt: null,
        });
        await s.insertScimToken(token('t2', T0 + 1));
        await s.insertScimToken(token('t1', T0));
        expect(await s.findScimToken('hash-t1')).toEqual(token('t1', T0));
        expect(await s.findScimToken('nothing')).toBeNull();
        expect(ids(await s.listScimTokens())).toEqual(['t1', 't2']);
        await s.touchScimToken('t1', T0 + 5);
        expect(await s.revokeScimToken('t1', T0 + 6)).toBe(true);
        expect(await s.revokeScimToken('t1', T0 + 7)).toBe(false);
        expect(await s.revokeScimToken('nothing', T0)).toBe(false);
        expect(await s.findScimToken('hash-t1')).toEqual({ ...token('t1', T0), lastUsedAt: T0 + 5, revokedAt: T0 + 6 });
        await expect(s.insertScimToken({ ...token('t3', T0), hash: 'hash-t1' })).rejects.toThrow();
      });
    });

    describe('federation trusts', () => {
      it('are listed by name; a taken name is false; delete returns the trust', async () => {
        const trust = (name: string) => ({
          name,
          spec: `{"issuer":"https://${name}"}`,
          createdAt: T0,
          createdBy: 'admin',
        });
        expect(await s.insertFederationTrust(trust('gitlab'))).toBe(true);
        expect(await s.insertFederationTrust(trust('GitHub'))).toBe(true);
        expect(await s.insertFederationTrust(trust('azure'))).toBe(true);
        expect(await s.insertFederationTrust({ ...trust('gitlab'), spec: '{}' })).toBe(false);
        expect(await s.listFederationTrusts()).toEqual([trust('GitHub'), trust('azure'), trust('gitlab')]);
        expect(await s.deleteFederationTrust('gitlab')).toEqual(trust('gitlab'));
        expect(await s.deleteFederationTrust('gitlab')).toBeNull();
        expect((await s.listFederationTrusts()).map((t) => t.name)).toEqual(['GitHub', 'azure']);
      });
    });

    describe('audit outbox', () => {
      it('gives the oldest entries first, up to a limit, and deletes by id', async () => {
        const e = (id: string, at: number) => ({ id, at, entry: `{"op":"${id}"}` });
        await s.enqueueAuditEntry(e('b', T0 + 1));
        await s.enqueueAuditEntry(e('c', T0));
        await s.enqueueAuditEntry(e('a', T0 + 1));
        await s.enqueueAuditEntry(e('d', T0 + 2));
        expect(await s.listAuditOutbox(10)).toEqual([e('c', T0), e('a', T0 + 1), e('b', T0 + 1), e('d', T0 + 2)]);
        expect(ids(await s.listAuditOutbox(2))).toEqual(['c', 'a']);
        await s.deleteAuditOutbox(['c', 'b', 'nothing']);
        await s.deleteAuditOutbox([]);
        expect(ids(await s.listAuditOutbox(10))).toEqual(['a', 'd']);
      });
    });
  });
}
