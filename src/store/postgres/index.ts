/**
 * The Store on PostgreSQL, for several replicas sharing one database. It behaves like the
 * SQLite store method by method (one suite, src/store/store.contract.ts, checks both); what
 * the SQLite store gets from having one writer, this one gets from single statements (an
 * UPDATE … RETURNING, a DELETE … RETURNING, an INSERT … ON CONFLICT) or one transaction:
 * anything single-use is decided by the database, never read and then written.
 */
import pg from 'pg';
import { MIGRATIONS, type SharedMigration } from '../migrations/index.js';
import {
  type AuthEventRecord,
  type ChallengeRecord,
  type CredentialRecord,
  DuplicateCredentialError,
  type EnrollmentTokenRecord,
  type FederationTrustRecord,
  type GroupRecord,
  type MigrationStatus,
  type OAuthArtifactRecord,
  type OAuthGrantSummary,
  type RevocationRecord,
  type RoleBindingRecord,
  type ScimTokenRecord,
  type AgentGrantRecord,
  type ApprovalRecord,
  type ServicePrincipalRecord,
  type ServicePrincipalSecretRecord,
  type SessionIdp,
  type SessionRecord,
  type SigningKeyRecord,
  type Store,
  type UserRecord,
} from '../types.js';
import { bytes, json, jsonOrAbsent, type Row, Table } from './table.js';

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db; a password may come from PGPASSWORD. */
  connectionString: string;
  /** Connections in the pool (default 10). */
  max?: number;
  /** Overridable for migration tests. */
  migrations?: readonly SharedMigration[];
}

/** Names "Keygate migrations" among advisory locks (the bytes of 'kgmigr'). */
const MIGRATION_LOCK = 0x6b676d696772;

/** Expired challenges are kept this long, so a late answer is told "expired", then purged. */
const CHALLENGE_KEEP_MS = 10 * 60_000;

/** BIGINT (epoch ms, counters, count(*)) as a JS number; every value the store keeps fits in 2^53. */
export const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** A pool or a client in a transaction. */
interface Db {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult<Row>>;
}

// What each table holds, field by field (the column is the field's name in snake_case).
const signingKeys = new Table<SigningKeyRecord>('signing_keys', {
  kid: null,
  alg: null,
  use: null,
  publicJwk: null,
  privateJwk: null,
  createdAt: null,
  retiresAt: null,
});
const users = new Table<UserRecord>('users', {
  id: null,
  email: null,
  displayName: null,
  webauthnId: null,
  createdAt: null,
  disabledAt: null,
  roles: null,
  groups: null,
  externalId: null,
});
const groups = new Table<GroupRecord>('groups', {
  id: null,
  name: null,
  description: null,
  createdAt: null,
  createdBy: null,
  externalId: null,
});
const credentials = new Table<CredentialRecord>('credentials', {
  id: null,
  userId: null,
  publicKey: bytes,
  counter: null,
  aaguid: null,
  transports: json,
  backupEligible: null,
  backedUp: null,
  uvInitialized: null,
  attestationFmt: null,
  attested: null,
  name: null,
  createdAt: null,
  lastUsedAt: null,
  revokedAt: null,
  clonedAt: null,
});
const enrollmentTokens = new Table<EnrollmentTokenRecord>('enrollment_tokens', {
  tokenHash: null,
  userId: null,
  kind: null,
  createdBy: null,
  createdAt: null,
  expiresAt: null,
  usedAt: null,
});
const challenges = new Table<ChallengeRecord>('webauthn_challenges', {
  challenge: null,
  kind: null,
  userId: null,
  bindingHash: null,
  enrollmentHash: null,
  allowIds: json,
  expiresAt: null,
});
const sessions = new Table<SessionRecord>('sessions', {
  idHash: null,
  userId: null,
  credentialId: null,
  authEventId: null,
  authTime: null,
  uv: null,
  createdAt: null,
  lastSeenAt: null,
  expiresAt: null,
  revokedAt: null,
  ip: null,
  userAgent: null,
  idp: jsonOrAbsent,
});
/** principalType and via travel to the audit log; they are not stored with the event. */
const authEvents = new Table<Omit<AuthEventRecord, 'principalType' | 'via'>>('auth_events', {
  id: null,
  at: null,
  kind: null,
  outcome: null,
  reason: null,
  userId: null,
  credentialId: null,
  aaguid: null,
  authenticator: null,
  uv: null,
  backupEligible: null,
  backedUp: null,
  ip: null,
  userAgent: null,
});
const oauthArtifacts = new Table<OAuthArtifactRecord>('oauth_artifacts', {
  model: null,
  id: null,
  payload: null,
  grantId: null,
  userCode: null,
  uid: null,
  expiresAt: null,
  consumedAt: null,
});
const servicePrincipals = new Table<ServicePrincipalRecord>('service_principals', {
  id: null,
  name: null,
  description: null,
  roles: json,
  jwks: null,
  createdAt: null,
  createdBy: null,
  disabledAt: null,
});
const spSecrets = new Table<ServicePrincipalSecretRecord>('service_principal_secrets', {
  id: null,
  spId: null,
  hash: null,
  createdAt: null,
  expiresAt: null,
  revokedAt: null,
});
const revocations = new Table<RevocationRecord>('revocations', { id: null, revokedAt: null, expiresAt: null });
const roleBindings = new Table<RoleBindingRecord>('role_bindings', {
  id: null,
  subjectType: null,
  subject: null,
  role: null,
  createdAt: null,
  createdBy: null,
});
const agentGrants = new Table<AgentGrantRecord>('agent_grants', {
  id: null,
  userId: null,
  agentId: null,
  actions: json,
  createdAt: null,
  expiresAt: null,
  revokedAt: null,
});
const approvals = new Table<ApprovalRecord>('approvals', {
  id: null,
  userId: null,
  agentId: null,
  grantId: null,
  upstream: null,
  method: null,
  path: null,
  query: null,
  action: null,
  resource: null,
  contentType: null,
  body: bytes,
  bodySha256: null,
  digest: null,
  status: null,
  createdAt: null,
  expiresAt: null,
  decidedAt: null,
  credentialId: null,
  eventId: null,
  usedAt: null,
});
const scimTokens = new Table<ScimTokenRecord>('scim_tokens', {
  id: null,
  name: null,
  hash: null,
  createdAt: null,
  createdBy: null,
  lastUsedAt: null,
  revokedAt: null,
});
const federationTrusts = new Table<FederationTrustRecord>('federation_trusts', {
  name: null,
  spec: null,
  createdAt: null,
  createdBy: null,
});
const auditOutbox = new Table<{ id: string; at: number; entry: string }>('audit_outbox', {
  id: null,
  at: null,
  entry: null,
});

/** A user with their roles and groups (sorted byte-wise: the columns are COLLATE "C"). */
const SELECT_USER = `SELECT u.*,
    ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.role) AS roles,
    ARRAY(SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id
           WHERE m.user_id = u.id ORDER BY g.name) AS groups
  FROM users u`;

/** A NOCASE comparison (see the migrations): lower() of "C" text folds ASCII only, like SQLite. */
const nocase = (column: string, param: string): string => `lower(${column}) = lower(${param}::text COLLATE "C")`;

/** Which column findOAuthArtifact searches. */
const ARTIFACT_KEY = { id: 'id', userCode: 'user_code', uid: 'uid' } as const;

const REVOCATION_CHANNEL = 'keygate_revocations';

export class PostgresStore implements Store {
  readonly driver = 'postgres' as const;
  readonly pool: pg.Pool;
  private readonly migrations: readonly SharedMigration[];
  private closed = false;

  /** What the pool connects to (the audit chain opens its own pool on it). */
  readonly connectionString: string;

  constructor(opts: PostgresStoreOptions) {
    this.connectionString = opts.connectionString;
    // A database that does not answer fails a request within seconds (503), never holds it forever.
    this.pool = new pg.Pool({
      connectionString: opts.connectionString,
      max: opts.max ?? 10,
      types,
      connectionTimeoutMillis: 5_000,
    });
    // An idle connection that breaks (a restart, a failover) is dropped by the pool and the next
    // query opens another; without a listener the event would end the process.
    this.pool.on('error', () => undefined);
    this.migrations = opts.migrations ?? MIGRATIONS;
  }

  private async rows(text: string, values: unknown[] = [], db: Db = this.pool): Promise<Row[]> {
    return (await db.query(text, values)).rows;
  }

  private async one(text: string, values: unknown[] = [], db: Db = this.pool): Promise<Row | undefined> {
    return (await db.query(text, values)).rows[0];
  }

  /** Whether the statement wrote exactly one row. */
  private async wrote(text: string, values: unknown[], db: Db = this.pool): Promise<boolean> {
    return (await this.changes(text, values, db)) === 1;
  }

  /** How many rows the statement wrote. */
  private async changes(text: string, values: unknown[] = [], db: Db = this.pool): Promise<number> {
    return (await db.query(text, values)).rowCount ?? 0;
  }

  /** One transaction on one connection: committed when `fn` returns, rolled back when it throws. */
  private async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      c.release();
      return r;
    } catch (e) {
      // A connection that cannot even roll back is closed (which rolls back) rather than reused.
      await c.query('ROLLBACK').then(
        () => c.release(),
        (re: Error) => c.release(re),
      );
      throw e;
    }
  }

  async migrate(): Promise<MigrationStatus> {
    const c = await this.pool.connect();
    try {
      // Replicas starting together queue here: one applies, the others then find it applied.
      await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      const status = await this.migrateLocked(c);
      await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      c.release();
      return status;
    } catch (e) {
      // Closing the connection ends its transaction and frees the lock.
      c.release(e instanceof Error ? e : true);
      throw e;
    }
  }

  private async migrateLocked(c: pg.PoolClient): Promise<MigrationStatus> {
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const applied: number[] = [];
    const known = Math.max(0, ...this.migrations.map((m) => m.version));
    const currentVersion = async (): Promise<number> =>
      ((await this.one('SELECT max(version) AS v FROM schema_migrations', [], c))?.v as number | null) ?? 0;
    const current = await currentVersion();
    if (current > known) {
      throw new Error(
        `database schema version ${current} is newer than this Keygate knows (${known}); refusing to start`,
      );
    }
    for (const m of [...this.migrations].sort((a, b) => a.version - b.version)) {
      // A failure leaves the transaction open; migrate() then closes the connection, which rolls it back.
      await c.query('BEGIN');
      if ((await this.changes('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version], c)) === 0) {
        await c.query(m.postgres);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          Date.now(),
        ]);
        applied.push(m.version);
      }
      await c.query('COMMIT');
    }
    return { applied, current: await currentVersion() };
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // ---- meta and signing keys ----------------------------------------------------------------

  async getMeta(key: string): Promise<string | null> {
    return ((await this.one('SELECT value FROM keygate_meta WHERE key = $1', [key]))?.value as string) ?? null;
  }

  async initMeta(key: string, value: string): Promise<string> {
    // Two statements: the read sees the row a concurrent writer committed first.
    await this.pool.query('INSERT INTO keygate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [
      key,
      value,
    ]);
    return (await this.getMeta(key)) as string;
  }

  async insertSigningKey(k: SigningKeyRecord): Promise<void> {
    await this.pool.query(...signingKeys.insert(k));
  }

  async listSigningKeys(use: SigningKeyRecord['use']): Promise<SigningKeyRecord[]> {
    return signingKeys.readAll(
      await this.rows('SELECT * FROM signing_keys WHERE use = $1 ORDER BY created_at DESC', [use]),
    );
  }

  async retireSigningKeys(use: SigningKeyRecord['use'], at: number): Promise<void> {
    await this.pool.query(
      'UPDATE signing_keys SET retires_at = $1 WHERE use = $2 AND (retires_at IS NULL OR retires_at > $1)',
      [at, use],
    );
  }

  // ---- people ------------------------------------------------------------------------------

  private async user(where: string, value: string, db: Db = this.pool): Promise<UserRecord | null> {
    return users.readOne(await this.one(`${SELECT_USER} WHERE ${where}`, [value], db));
  }

  async upsertUser(
    u: Omit<UserRecord, 'roles' | 'groups' | 'disabledAt' | 'externalId'>,
    roles: string[],
  ): Promise<UserRecord> {
    return this.tx(async (db) => {
      await db.query(
        `INSERT INTO users (id, email, display_name, webauthn_id, created_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT ((lower(email))) DO NOTHING`,
        [u.id, u.email, u.displayName, u.webauthnId, u.createdAt],
      );
      // A new statement sees the user a concurrent upsert committed first.
      await db.query(
        `INSERT INTO user_roles (user_id, role) SELECT u.id, r FROM users u, unnest($2::text[]) r
          WHERE ${nocase('u.email', '$1')} ON CONFLICT DO NOTHING`,
        [u.email, roles],
      );
      return (await this.user(nocase('u.email', '$1'), u.email, db)) as UserRecord;
    });
  }

  async updateUser(
    id: string,
    o: { email?: string; displayName?: string; externalId?: string | null },
  ): Promise<boolean> {
    return this.wrote(
      `UPDATE users SET email = coalesce($1, email), display_name = coalesce($2, display_name),
           external_id = CASE WHEN $3 THEN $4 ELSE external_id END WHERE id = $5`,
      [o.email ?? null, o.displayName ?? null, o.externalId !== undefined, o.externalId ?? null, id],
    );
  }

  async getUser(id: string): Promise<UserRecord | null> {
    return this.user('u.id = $1', id);
  }

  async getUserByEmail(email: string): Promise<UserRecord | null> {
    return this.user(nocase('u.email', '$1'), email);
  }

  async getUserByWebauthnId(webauthnId: string): Promise<UserRecord | null> {
    return this.user('u.webauthn_id = $1', webauthnId);
  }

  async countUsersWithRole(role: string): Promise<number> {
    return (
      await this.one(
        'SELECT count(*) AS n FROM user_roles r JOIN users u ON u.id = r.user_id WHERE r.role = $1 AND u.disabled_at IS NULL',
        [role],
      )
    )?.n as number;
  }

  async listUsers(o: { query?: string; after?: string; limit: number }): Promise<UserRecord[]> {
    // Email or name containing the query (case-insensitive), in email order, after a cursor.
    const like = `%${(o.query ?? '').toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = await this.rows(
      `${SELECT_USER}
        WHERE (lower(u.email) LIKE $1 ESCAPE '\\' OR lower(u.display_name) LIKE $1 ESCAPE '\\')
          AND lower(u.email) > lower($2::text COLLATE "C")
        ORDER BY lower(u.email) LIMIT $3`,
      [like, o.after ?? '', o.limit],
    );
    return users.readAll(rows);
  }

  async setUserDisabled(id: string, at: number | null): Promise<boolean> {
    return this.wrote('UPDATE users SET disabled_at = $1 WHERE id = $2', [at, id]);
  }

  async deleteUser(id: string): Promise<boolean> {
    // Keys, sessions, roles, links and memberships go with the row (ON DELETE CASCADE).
    return this.wrote('DELETE FROM users WHERE id = $1', [id]);
  }

  // ---- groups --------------------------------------------------------------------------------

  async listGroups(): Promise<(GroupRecord & { members: number })[]> {
    const rows = await this.rows(
      `SELECT g.*, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members
         FROM groups g ORDER BY g.name`,
    );
    return rows.map((r) => ({ ...groups.read(r), members: r.members as number }));
  }

  async getGroup(idOrName: string): Promise<GroupRecord | null> {
    return groups.readOne(
      await this.one('SELECT * FROM groups WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1', [idOrName]),
    );
  }

  async insertGroup(g: GroupRecord): Promise<boolean> {
    return this.wrote(
      `INSERT INTO groups (id, name, description, created_at, created_by, external_id) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING`,
      [g.id, g.name, g.description, g.createdAt, g.createdBy, g.externalId],
    );
  }

  async updateGroup(id: string, o: { name?: string; externalId?: string | null }): Promise<boolean> {
    return this.wrote(
      'UPDATE groups SET name = coalesce($1, name), external_id = CASE WHEN $2 THEN $3 ELSE external_id END WHERE id = $4',
      [o.name ?? null, o.externalId !== undefined, o.externalId ?? null, id],
    );
  }

  async deleteGroup(id: string): Promise<GroupRecord | null> {
    return groups.readOne(await this.one('DELETE FROM groups WHERE id = $1 RETURNING *', [id]));
  }

  async listGroupMembers(groupId: string): Promise<UserRecord[]> {
    return users.readAll(
      await this.rows(
        `${SELECT_USER} JOIN group_members gm ON gm.user_id = u.id WHERE gm.group_id = $1 ORDER BY lower(u.email)`,
        [groupId],
      ),
    );
  }

  async addGroupMember(groupId: string, userId: string, at: number): Promise<boolean> {
    return this.wrote(
      'INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [groupId, userId, at],
    );
  }

  async removeGroupMember(groupId: string, userId: string): Promise<boolean> {
    return this.wrote('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [groupId, userId]);
  }

  // ---- credentials -------------------------------------------------------------------------

  async insertCredential(c: CredentialRecord): Promise<void> {
    try {
      await this.pool.query(...credentials.insert(c));
    } catch (e) {
      const err = e as { code?: string; constraint?: string };
      if (err.code === '23505' && err.constraint === 'credentials_pkey') throw new DuplicateCredentialError();
      throw e;
    }
  }

  async getCredential(id: string): Promise<CredentialRecord | null> {
    return credentials.readOne(await this.one('SELECT * FROM credentials WHERE id = $1', [id]));
  }

  async listCredentials(userId: string): Promise<CredentialRecord[]> {
    return credentials.readAll(
      await this.rows('SELECT * FROM credentials WHERE user_id = $1 ORDER BY created_at', [userId]),
    );
  }

  async completeLogin(o: Parameters<Store['completeLogin']>[0]): Promise<boolean> {
    // One transaction: the login's writes land together or not at all. A concurrent login with
    // the same expected counter waits for this row lock, then finds the counter moved.
    return this.tx(async (db) => {
      const moved = await this.wrote(
        `UPDATE credentials SET counter = $1, backed_up = $2, uv_initialized = uv_initialized OR $3, last_used_at = $4
          WHERE id = $5 AND counter = $6 AND revoked_at IS NULL`,
        [o.use.counter, o.use.backedUp, o.use.uv, o.use.at, o.credentialId, o.expectedCounter],
        db,
      );
      if (!moved) return false;
      await db.query(...authEvents.insert(o.event));
      if (o.endSessionHash !== null) {
        await db.query('UPDATE sessions SET revoked_at = coalesce(revoked_at, $1) WHERE id_hash = $2', [
          o.use.at,
          o.endSessionHash,
        ]);
      }
      await db.query(...sessions.insert(o.session));
      return true;
    });
  }

  async approveWithCredential(o: Parameters<Store['approveWithCredential']>[0]): Promise<boolean> {
    // One transaction: the counter, the auth event and the approval land together or not at all.
    const rollback = new Error('approval not pending');
    try {
      return await this.tx(async (db) => {
        const moved = await this.wrote(
          `UPDATE credentials SET counter = $1, backed_up = $2, uv_initialized = uv_initialized OR $3, last_used_at = $4
            WHERE id = $5 AND user_id = $6 AND counter = $7 AND revoked_at IS NULL`,
          [o.use.counter, o.use.backedUp, o.use.uv, o.use.at, o.credentialId, o.userId, o.expectedCounter],
          db,
        );
        if (!moved) return false;
        await db.query(...authEvents.insert(o.event));
        const approved = await this.wrote(
          `UPDATE approvals SET status = 'approved', decided_at = $1, credential_id = $2, event_id = $3
            WHERE id = $4 AND user_id = $5 AND status = 'pending' AND expires_at > $1`,
          [o.use.at, o.credentialId, o.event.id, o.approvalId, o.userId],
          db,
        );
        if (!approved) throw rollback;
        return true;
      });
    } catch (e) {
      if (e === rollback) return false;
      throw e;
    }
  }

  async markCredentialCloned(id: string, at: number): Promise<void> {
    await this.pool.query('UPDATE credentials SET cloned_at = coalesce(cloned_at, $1) WHERE id = $2', [at, id]);
  }

  async renameCredential(userId: string, id: string, name: string): Promise<boolean> {
    return this.wrote('UPDATE credentials SET name = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL', [
      name,
      id,
      userId,
    ]);
  }

  async revokeCredential(userId: string, id: string, at: number): Promise<boolean> {
    return this.wrote('UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL', [
      at,
      id,
      userId,
    ]);
  }

  // ---- enrollment and recovery links ---------------------------------------------------------

  async insertEnrollmentToken(t: EnrollmentTokenRecord): Promise<void> {
    await this.pool.query(...enrollmentTokens.insert(t));
  }

  async getEnrollmentToken(tokenHash: string): Promise<EnrollmentTokenRecord | null> {
    return enrollmentTokens.readOne(
      await this.one('SELECT * FROM enrollment_tokens WHERE token_hash = $1', [tokenHash]),
    );
  }

  async consumeEnrollmentToken(tokenHash: string, now: number): Promise<boolean> {
    return this.wrote(
      'UPDATE enrollment_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1',
      [now, tokenHash],
    );
  }

  async hasUsableRecoveryToken(userId: string, now: number): Promise<boolean> {
    const r = await this.one(
      `SELECT 1 FROM enrollment_tokens WHERE user_id = $1 AND kind = 'recovery' AND used_at IS NULL AND expires_at > $2
        LIMIT 1`,
      [userId, now],
    );
    return r !== undefined;
  }

  // ---- challenges --------------------------------------------------------------------------

  async insertChallenge(c: ChallengeRecord): Promise<void> {
    await this.pool.query('DELETE FROM webauthn_challenges WHERE expires_at <= $1', [Date.now() - CHALLENGE_KEEP_MS]);
    // The same challenge again replaces the first (as in the SQLite store's map).
    await this.pool.query(...challenges.insert(c, 'ON CONFLICT (challenge) DO UPDATE SET', challenges.excluded()));
  }

  async takeChallenge(challenge: string): Promise<ChallengeRecord | null> {
    // Whoever deletes the row owns the challenge; a replay, on any replica, finds nothing.
    return challenges.readOne(
      await this.one('DELETE FROM webauthn_challenges WHERE challenge = $1 RETURNING *', [challenge]),
    );
  }

  // ---- sessions ----------------------------------------------------------------------------

  async insertSession(s: SessionRecord): Promise<void> {
    await this.pool.query(...sessions.insert(s));
  }

  async getSession(idHash: string): Promise<SessionRecord | null> {
    return sessions.readOne(await this.one('SELECT * FROM sessions WHERE id_hash = $1', [idHash]));
  }

  async touchSession(idHash: string, at: number): Promise<void> {
    await this.pool.query('UPDATE sessions SET last_seen_at = greatest(last_seen_at, $1) WHERE id_hash = $2', [
      at,
      idHash,
    ]);
  }

  async revokeSession(idHash: string, at: number): Promise<void> {
    await this.pool.query('UPDATE sessions SET revoked_at = coalesce(revoked_at, $1) WHERE id_hash = $2', [at, idHash]);
  }

  async revokeUserSessions(userId: string, at: number): Promise<string[]> {
    return this.revokeSessionsWhere('user_id', userId, at);
  }

  async revokeCredentialSessions(credentialId: string, at: number): Promise<string[]> {
    return this.revokeSessionsWhere('credential_id', credentialId, at);
  }

  private async revokeSessionsWhere(column: 'user_id' | 'credential_id', value: string, at: number): Promise<string[]> {
    const rows = await this.rows(
      `UPDATE sessions SET revoked_at = $1 WHERE ${column} = $2 AND revoked_at IS NULL RETURNING id_hash`,
      [at, value],
    );
    return rows.map((r) => r.id_hash as string);
  }

  async listSessions(o: { userId?: string; liveAt: number; limit: number }): Promise<SessionRecord[]> {
    return sessions.readAll(
      await this.rows(
        `SELECT * FROM sessions WHERE ($1::text IS NULL OR user_id = $1) AND revoked_at IS NULL AND expires_at > $2
          ORDER BY last_seen_at DESC LIMIT $3`,
        [o.userId ?? null, o.liveAt, o.limit],
      ),
    );
  }

  async setSessionIdp(idHash: string, idp: SessionIdp): Promise<void> {
    await this.pool.query('UPDATE sessions SET idp = $1 WHERE id_hash = $2', [JSON.stringify(idp), idHash]);
  }

  // ---- a person's accounts at identity providers ---------------------------------------------

  async findUserIdentity(provider: string, subject: string): Promise<string | null> {
    const r = await this.one('SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2', [
      provider,
      subject,
    ]);
    return (r?.user_id as string | undefined) ?? null;
  }

  async linkUserIdentity(provider: string, subject: string, userId: string, at: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO user_identities (provider, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (provider, subject) DO UPDATE SET last_login_at = excluded.last_login_at`,
      [provider, subject, userId, at],
    );
  }

  // ---- auth events -------------------------------------------------------------------------

  async insertAuthEvent(e: AuthEventRecord): Promise<void> {
    await this.pool.query(...authEvents.insert(e));
  }

  async listAuthEvents(filter: { userId?: string; limit: number }): Promise<AuthEventRecord[]> {
    return authEvents.readAll(
      await this.rows(
        'SELECT * FROM auth_events WHERE ($1::text IS NULL OR user_id = $1) ORDER BY at DESC, seq DESC LIMIT $2',
        [filter.userId ?? null, filter.limit],
      ),
    );
  }

  // ---- OAuth artifacts ---------------------------------------------------------------------

  async upsertOAuthArtifact(a: OAuthArtifactRecord): Promise<void> {
    // consumed_at stays: a re-save of the payload does not un-consume the artifact.
    await this.pool.query(
      ...oauthArtifacts.insert(
        a,
        'ON CONFLICT (model, id) DO UPDATE SET',
        oauthArtifacts.excluded('payload', 'grantId', 'userCode', 'uid', 'expiresAt'),
      ),
    );
  }

  async insertOAuthArtifactIfAbsent(a: OAuthArtifactRecord, now: number): Promise<boolean> {
    // One statement: an expired row of that id is replaced (as if purged first); a live one wins.
    const [text, values] = oauthArtifacts.insert(a, 'ON CONFLICT (model, id) DO UPDATE SET', oauthArtifacts.excluded());
    const live = `WHERE oauth_artifacts.expires_at <= $${values.length + 1}`;
    return this.wrote(`${text} ${live}`, [...values, now]);
  }

  async findOAuthArtifact(
    model: string,
    by: 'id' | 'userCode' | 'uid',
    value: string,
    now: number,
  ): Promise<OAuthArtifactRecord | null> {
    return oauthArtifacts.readOne(
      await this.one(
        `SELECT * FROM oauth_artifacts WHERE model = $1 AND ${ARTIFACT_KEY[by]} = $2
          AND (expires_at IS NULL OR expires_at > $3) LIMIT 1`,
        [model, value, now],
      ),
    );
  }

  async consumeOAuthArtifact(model: string, id: string, at: number): Promise<boolean> {
    // Only the first consumer wins, whichever replica it is on.
    return this.wrote(
      'UPDATE oauth_artifacts SET consumed_at = $1 WHERE model = $2 AND id = $3 AND consumed_at IS NULL',
      [at, model, id],
    );
  }

  async destroyOAuthArtifact(model: string, id: string): Promise<void> {
    await this.pool.query('DELETE FROM oauth_artifacts WHERE model = $1 AND id = $2', [model, id]);
  }

  async listOAuthGrants(o: { accountId?: string; now: number; limit: number }): Promise<OAuthGrantSummary[]> {
    // oidc-provider's Grant payload: accountId, clientId, iat and exp (seconds).
    const rows = await this.rows(
      `SELECT id, payload::jsonb ->> 'accountId' AS account_id, payload::jsonb ->> 'clientId' AS client_id,
              (payload::jsonb ->> 'iat')::float8 AS iat, expires_at
         FROM oauth_artifacts
        WHERE model = 'Grant' AND (expires_at IS NULL OR expires_at > $1)
          AND ($2::text IS NULL OR payload::jsonb ->> 'accountId' = $2)
        ORDER BY iat DESC NULLS LAST LIMIT $3`,
      [o.now, o.accountId ?? null, o.limit],
    );
    return rows.map((r) => ({
      id: r.id as string,
      accountId: (r.account_id as string | null) ?? '',
      clientId: (r.client_id as string | null) ?? '',
      createdAt: ((r.iat as number | null) ?? 0) * 1000,
      expiresAt: r.expires_at as number | null,
    }));
  }

  async revokeOAuthGrant(grantId: string): Promise<number> {
    return this.changes("DELETE FROM oauth_artifacts WHERE grant_id = $1 OR (model = 'Grant' AND id = $1)", [grantId]);
  }

  async purgeOAuthArtifacts(now: number): Promise<number> {
    return this.changes('DELETE FROM oauth_artifacts WHERE expires_at IS NOT NULL AND expires_at <= $1', [now]);
  }

  // ---- service principals ------------------------------------------------------------------

  async insertServicePrincipal(sp: ServicePrincipalRecord): Promise<void> {
    await this.pool.query(...servicePrincipals.insert(sp));
  }

  async getServicePrincipal(id: string): Promise<ServicePrincipalRecord | null> {
    return servicePrincipals.readOne(await this.one('SELECT * FROM service_principals WHERE id = $1', [id]));
  }

  async getServicePrincipalByName(name: string): Promise<ServicePrincipalRecord | null> {
    return servicePrincipals.readOne(
      await this.one(`SELECT * FROM service_principals WHERE ${nocase('name', '$1')}`, [name]),
    );
  }

  async listServicePrincipals(): Promise<ServicePrincipalRecord[]> {
    return servicePrincipals.readAll(await this.rows('SELECT * FROM service_principals ORDER BY lower(name)'));
  }

  async setServicePrincipalJwks(id: string, jwks: string | null): Promise<boolean> {
    return this.wrote('UPDATE service_principals SET jwks = $1 WHERE id = $2', [jwks, id]);
  }

  async disableServicePrincipal(id: string, at: number): Promise<boolean> {
    return this.wrote('UPDATE service_principals SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL', [at, id]);
  }

  async insertServicePrincipalSecret(s: ServicePrincipalSecretRecord): Promise<void> {
    await this.pool.query(...spSecrets.insert(s));
  }

  async listServicePrincipalSecrets(spId: string): Promise<ServicePrincipalSecretRecord[]> {
    return spSecrets.readAll(
      await this.rows('SELECT * FROM service_principal_secrets WHERE sp_id = $1 ORDER BY created_at DESC', [spId]),
    );
  }

  async revokeServicePrincipalSecret(spId: string, secretId: string, at: number): Promise<boolean> {
    return this.wrote(
      'UPDATE service_principal_secrets SET revoked_at = $1 WHERE sp_id = $2 AND id = $3 AND revoked_at IS NULL',
      [at, spId, secretId],
    );
  }

  // ---- revocations -------------------------------------------------------------------------

  async insertRevocation(r: RevocationRecord): Promise<void> {
    await this.pool.query(
      ...revocations.insert(
        r,
        'ON CONFLICT (id) DO UPDATE SET expires_at = greatest(revocations.expires_at, excluded.expires_at)',
      ),
    );
    // Wake the other replicas' pollers (delivered on commit; their periodic poll is the fallback).
    await this.pool.query(`SELECT pg_notify('${REVOCATION_CHANNEL}', '')`);
  }

  /**
   * LISTEN on one dedicated connection. When it drops, it is opened again after a second; the
   * revocations' periodic poll covers the gap (nothing depends on a notification arriving).
   */
  onRevocation(listener: () => void): () => void {
    let stopped = false;
    let client: pg.Client | undefined;
    const connect = () => {
      if (stopped || this.closed) return;
      const c = new pg.Client({ connectionString: this.connectionString, connectionTimeoutMillis: 5_000 });
      client = c;
      const retry = () => {
        c.removeAllListeners();
        c.end().catch(() => undefined);
        if (!stopped && !this.closed) setTimeout(connect, 1_000).unref();
      };
      c.on('notification', (n) => {
        if (n.channel === REVOCATION_CHANNEL) listener();
      });
      c.on('error', retry);
      c.connect()
        .then(() => c.query(`LISTEN ${REVOCATION_CHANNEL}`))
        // Anything recorded while it was not listening: poll once now.
        .then(() => listener())
        .catch(retry);
    };
    connect();
    return () => {
      stopped = true;
      client?.removeAllListeners();
      client?.end().catch(() => undefined);
    };
  }

  async listRevocationsSince(since: number): Promise<RevocationRecord[]> {
    // Oldest first; ties in the order they were first recorded (SQLite: its index, then rowid).
    return revocations.readAll(
      await this.rows('SELECT * FROM revocations WHERE revoked_at >= $1 ORDER BY revoked_at, seq', [since]),
    );
  }

  async purgeRevocations(now: number): Promise<number> {
    return this.changes('DELETE FROM revocations WHERE expires_at <= $1', [now]);
  }

  // ---- role bindings -----------------------------------------------------------------------

  async listRoleBindings(): Promise<RoleBindingRecord[]> {
    return roleBindings.readAll(await this.rows('SELECT * FROM role_bindings ORDER BY subject_type, subject, role'));
  }

  async insertRoleBinding(b: RoleBindingRecord): Promise<boolean> {
    const [text, values] = roleBindings.insert(b, 'ON CONFLICT (subject_type, subject, role) DO NOTHING');
    return this.wrote(text, values);
  }

  async deleteRoleBinding(id: string): Promise<RoleBindingRecord | null> {
    return roleBindings.readOne(await this.one('DELETE FROM role_bindings WHERE id = $1 RETURNING *', [id]));
  }

  // ---- SCIM tokens ----------------------------------------------------------------------------

  async insertAgentGrant(g: AgentGrantRecord): Promise<void> {
    await this.pool.query(...agentGrants.insert(g));
  }

  async getAgentGrant(id: string): Promise<AgentGrantRecord | null> {
    return agentGrants.readOne(await this.one('SELECT * FROM agent_grants WHERE id = $1', [id]));
  }

  async listAgentGrants(userId: string): Promise<AgentGrantRecord[]> {
    return agentGrants.readAll(
      await this.rows('SELECT * FROM agent_grants WHERE user_id = $1 ORDER BY created_at DESC, id DESC', [userId]),
    );
  }

  async revokeAgentGrant(userId: string, id: string, at: number): Promise<boolean> {
    return this.wrote('UPDATE agent_grants SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL', [
      at,
      id,
      userId,
    ]);
  }

  async insertApproval(a: ApprovalRecord): Promise<void> {
    await this.pool.query(...approvals.insert(a));
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    return approvals.readOne(await this.one('SELECT * FROM approvals WHERE id = $1', [id]));
  }

  async listApprovals(userId: string, limit: number): Promise<ApprovalRecord[]> {
    return approvals.readAll(
      await this.rows('SELECT * FROM approvals WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2', [
        userId,
        limit,
      ]),
    );
  }

  async denyApproval(id: string, userId: string, at: number): Promise<boolean> {
    return this.wrote(
      `UPDATE approvals SET status = 'denied', decided_at = $1
        WHERE id = $2 AND user_id = $3 AND status = 'pending' AND expires_at > $1`,
      [at, id, userId],
    );
  }

  async useApproval(id: string, digest: string, at: number): Promise<boolean> {
    return this.wrote(
      `UPDATE approvals SET status = 'used', used_at = $1
        WHERE id = $2 AND digest = $3 AND status = 'approved' AND expires_at > $1`,
      [at, id, digest],
    );
  }

  async insertScimToken(t: ScimTokenRecord): Promise<void> {
    await this.pool.query(...scimTokens.insert(t));
  }

  async findScimToken(hash: string): Promise<ScimTokenRecord | null> {
    return scimTokens.readOne(await this.one('SELECT * FROM scim_tokens WHERE hash = $1', [hash]));
  }

  async listScimTokens(): Promise<ScimTokenRecord[]> {
    return scimTokens.readAll(await this.rows('SELECT * FROM scim_tokens ORDER BY created_at'));
  }

  async revokeScimToken(id: string, at: number): Promise<boolean> {
    return this.wrote('UPDATE scim_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id]);
  }

  async touchScimToken(id: string, at: number): Promise<void> {
    await this.pool.query('UPDATE scim_tokens SET last_used_at = $1 WHERE id = $2', [at, id]);
  }

  // ---- federation trusts ---------------------------------------------------------------------

  async listFederationTrusts(): Promise<FederationTrustRecord[]> {
    return federationTrusts.readAll(await this.rows('SELECT * FROM federation_trusts ORDER BY name'));
  }

  async insertFederationTrust(t: FederationTrustRecord): Promise<boolean> {
    const [text, values] = federationTrusts.insert(t, 'ON CONFLICT DO NOTHING');
    return this.wrote(text, values);
  }

  async deleteFederationTrust(name: string): Promise<FederationTrustRecord | null> {
    return federationTrusts.readOne(
      await this.one('DELETE FROM federation_trusts WHERE name = $1 RETURNING *', [name]),
    );
  }

  // ---- audit outbox --------------------------------------------------------------------------

  async enqueueAuditEntry(e: { id: string; at: number; entry: string }): Promise<void> {
    await this.pool.query(...auditOutbox.insert(e));
  }

  async listAuditOutbox(limit: number): Promise<{ id: string; at: number; entry: string }[]> {
    return auditOutbox.readAll(await this.rows('SELECT * FROM audit_outbox ORDER BY at, id LIMIT $1', [limit]));
  }

  async deleteAuditOutbox(ids: readonly string[]): Promise<void> {
    await this.pool.query('DELETE FROM audit_outbox WHERE id = ANY($1::text[])', [ids]);
  }
}
