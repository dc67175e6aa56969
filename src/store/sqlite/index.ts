import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, type Migration } from '../migrations/index.js';
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

export interface SqliteStoreOptions {
  /** File path, or ':memory:' for tests. */
  path: string;
  /** Overridable for migration tests. */
  migrations?: readonly Migration[];
}

interface SigningKeyRow {
  kid: string;
  alg: 'ES256';
  use: SigningKeyRecord['use'];
  public_jwk: string;
  private_jwk: string;
  created_at: number;
  retires_at: number | null;
}

export class SqliteStore implements Store {
  readonly driver = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly migrations: readonly Migration[];

  constructor(opts: SqliteStoreOptions) {
    if (opts.path !== ':memory:') {
      // The database holds private keys: keep its folder private to this user.
      mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
    }
    this.db = new Database(opts.path);
    if (opts.path !== ':memory:') chmodSync(opts.path, 0o600);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a transaction that returned survives a crash or kill of this process
    // (the OS holds the WAL); only a power loss or OS crash can lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrations = opts.migrations ?? MIGRATIONS;
  }

  private readonly statements = new Map<string, Database.Statement>();
  private readonly challenges = new Map<string, ChallengeRecord>();

  /** Prepared statements are compiled once and reused: preparing costs more than running. */
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (st === undefined) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  async migrate(): Promise<MigrationStatus> {
    this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    const applied: number[] = [];
    const known = Math.max(0, ...this.migrations.map((m) => m.version));
    const currentVersion = (): number =>
      (this.sql('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
    if (currentVersion() > known) {
      throw new Error(
        `database schema version ${currentVersion()} is newer than this Keygate knows (${known}); refusing to start`,
      );
    }
    for (const m of [...this.migrations].sort((a, b) => a.version - b.version)) {
      // IMMEDIATE takes the write lock first, so two processes starting at once apply each migration once.
      const step = this.db.transaction(() => {
        if (this.sql('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version)) return false;
        this.db.exec(m.sqlite);
        this.sql('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
          m.version,
          m.name,
          Date.now(),
        );
        return true;
      });
      if (step.immediate()) applied.push(m.version);
    }
    return { applied, current: currentVersion() };
  }

  async ping(): Promise<void> {
    this.sql('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  async getMeta(key: string): Promise<string | null> {
    const row = this.sql('SELECT value FROM keygate_meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  async initMeta(key: string, value: string): Promise<string> {
    this.sql('INSERT INTO keygate_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, value);
    return (await this.getMeta(key)) as string;
  }

  async insertSigningKey(k: SigningKeyRecord): Promise<void> {
    this.sql(
      `INSERT INTO signing_keys (kid, alg, use, public_jwk, private_jwk, created_at, retires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(k.kid, k.alg, k.use, k.publicJwk, k.privateJwk, k.createdAt, k.retiresAt);
  }

  async listSigningKeys(use: SigningKeyRecord['use']): Promise<SigningKeyRecord[]> {
    const rows = this.sql('SELECT * FROM signing_keys WHERE use = ? ORDER BY created_at DESC').all(
      use,
    ) as SigningKeyRow[];
    return rows.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      use: r.use,
      publicJwk: r.public_jwk,
      privateJwk: r.private_jwk,
      createdAt: r.created_at,
      retiresAt: r.retires_at,
    }));
  }

  // ---- people ------------------------------------------------------------------------------

  private userFromRow(r: UserRow | undefined): UserRecord | null {
    if (!r) return null;
    const roles = (
      this.sql('SELECT role FROM user_roles WHERE user_id = ? ORDER BY role').all(r.id) as {
        role: string;
      }[]
    ).map((x) => x.role);
    const groups = (
      this.sql(
        'SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name',
      ).all(r.id) as { name: string }[]
    ).map((x) => x.name);
    return {
      id: r.id,
      email: r.email,
      displayName: r.display_name,
      webauthnId: r.webauthn_id,
      createdAt: r.created_at,
      disabledAt: r.disabled_at,
      roles,
      groups,
      externalId: r.external_id,
    };
  }

  async updateUser(
    id: string,
    o: { email?: string; displayName?: string; externalId?: string | null },
  ): Promise<boolean> {
    const r = this.sql(
      `UPDATE users SET email = coalesce(?, email), display_name = coalesce(?, display_name),
         external_id = CASE WHEN ? THEN ? ELSE external_id END WHERE id = ?`,
    ).run(o.email ?? null, o.displayName ?? null, b(o.externalId !== undefined), o.externalId ?? null, id);
    return r.changes === 1;
  }

  async upsertUser(
    u: Omit<UserRecord, 'roles' | 'groups' | 'disabledAt' | 'externalId'>,
    roles: string[],
  ): Promise<UserRecord> {
    const tx = this.db.transaction(() => {
      this.sql(
        `INSERT INTO users (id, email, display_name, webauthn_id, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (email) DO NOTHING`,
      ).run(u.id, u.email, u.displayName, u.webauthnId, u.createdAt);
      const row = this.sql('SELECT * FROM users WHERE email = ?').get(u.email) as UserRow;
      const add = this.sql('INSERT INTO user_roles (user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING');
      for (const role of roles) add.run(row.id, role);
      return row;
    });
    return this.userFromRow(tx.immediate()) as UserRecord;
  }

  async getUser(id: string): Promise<UserRecord | null> {
    return this.userFromRow(this.sql('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined);
  }

  async getUserByEmail(email: string): Promise<UserRecord | null> {
    return this.userFromRow(this.sql('SELECT * FROM users WHERE email = ?').get(email) as UserRow | undefined);
  }

  async getUserByWebauthnId(webauthnId: string): Promise<UserRecord | null> {
    return this.userFromRow(
      this.sql('SELECT * FROM users WHERE webauthn_id = ?').get(webauthnId) as UserRow | undefined,
    );
  }

  async listUsers(o: { query?: string; after?: string; limit: number }): Promise<UserRecord[]> {
    // Email or name containing the query (case-insensitive), in email order, after a cursor.
    const like = `%${(o.query ?? '').toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = this.sql(
      `SELECT * FROM users
        WHERE (lower(email) LIKE ? ESCAPE '\\' OR lower(display_name) LIKE ? ESCAPE '\\') AND email > ?
        ORDER BY email LIMIT ?`,
    ).all(like, like, o.after ?? '', o.limit) as UserRow[];
    return rows.map((r) => this.userFromRow(r) as UserRecord);
  }

  async setUserDisabled(id: string, at: number | null): Promise<boolean> {
    return this.sql('UPDATE users SET disabled_at = ? WHERE id = ?').run(at, id).changes === 1;
  }

  async deleteUser(id: string): Promise<boolean> {
    // Keys, sessions, roles, links and memberships go with the row (ON DELETE CASCADE).
    return this.sql('DELETE FROM users WHERE id = ?').run(id).changes === 1;
  }

  // ---- groups --------------------------------------------------------------------------------

  async listGroups(): Promise<(GroupRecord & { members: number })[]> {
    return (
      this.sql(
        `SELECT g.*, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members
           FROM groups g ORDER BY g.name`,
      ).all() as (GroupRow & { members: number })[]
    ).map((r) => ({ ...groupFromRow(r), members: r.members }));
  }

  async getGroup(idOrName: string): Promise<GroupRecord | null> {
    const r = this.sql('SELECT * FROM groups WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1').get(
      idOrName,
      idOrName,
      idOrName,
    ) as GroupRow | undefined;
    return r === undefined ? null : groupFromRow(r);
  }

  async insertGroup(g: GroupRecord): Promise<boolean> {
    return (
      this.sql(
        `INSERT INTO groups (id, name, description, created_at, created_by, external_id) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
      ).run(g.id, g.name, g.description, g.createdAt, g.createdBy, g.externalId).changes === 1
    );
  }

  async updateGroup(id: string, o: { name?: string; externalId?: string | null }): Promise<boolean> {
    const r = this.sql(
      `UPDATE groups SET name = coalesce(?, name), external_id = CASE WHEN ? THEN ? ELSE external_id END WHERE id = ?`,
    ).run(o.name ?? null, b(o.externalId !== undefined), o.externalId ?? null, id);
    return r.changes === 1;
  }

  async deleteGroup(id: string): Promise<GroupRecord | null> {
    const tx = this.db.transaction(() => {
      const r = this.sql('SELECT * FROM groups WHERE id = ?').get(id) as GroupRow | undefined;
      if (r !== undefined) this.sql('DELETE FROM groups WHERE id = ?').run(id);
      return r;
    });
    const r = tx.immediate();
    return r === undefined ? null : groupFromRow(r);
  }

  async listGroupMembers(groupId: string): Promise<UserRecord[]> {
    const rows = this.sql(
      `SELECT u.* FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY u.email`,
    ).all(groupId) as UserRow[];
    return rows.map((r) => this.userFromRow(r) as UserRecord);
  }

  async addGroupMember(groupId: string, userId: string, at: number): Promise<boolean> {
    return (
      this.sql('INSERT INTO group_members (group_id, user_id, added_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(
        groupId,
        userId,
        at,
      ).changes === 1
    );
  }

  async removeGroupMember(groupId: string, userId: string): Promise<boolean> {
    return this.sql('DELETE FROM group_members WHERE group_id = ? AND user_id = ?').run(groupId, userId).changes === 1;
  }

  async countUsersWithRole(role: string): Promise<number> {
    return (
      this.sql(
        'SELECT count(*) AS n FROM user_roles r JOIN users u ON u.id = r.user_id WHERE r.role = ? AND u.disabled_at IS NULL',
      ).get(role) as { n: number }
    ).n;
  }

  // ---- credentials -------------------------------------------------------------------------

  async insertCredential(c: CredentialRecord): Promise<void> {
    try {
      this.sql(
        `INSERT INTO credentials (id, user_id, public_key, counter, aaguid, transports, backup_eligible, backed_up,
             uv_initialized, attestation_fmt, attested, name, created_at, last_used_at, revoked_at, cloned_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        c.id,
        c.userId,
        Buffer.from(c.publicKey),
        c.counter,
        c.aaguid,
        JSON.stringify(c.transports),
        b(c.backupEligible),
        b(c.backedUp),
        b(c.uvInitialized),
        c.attestationFmt,
        b(c.attested),
        c.name,
        c.createdAt,
        c.lastUsedAt,
        c.revokedAt,
        c.clonedAt,
      );
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new DuplicateCredentialError();
      throw e;
    }
  }

  async getCredential(id: string): Promise<CredentialRecord | null> {
    const r = this.sql('SELECT * FROM credentials WHERE id = ?').get(id) as CredentialRow | undefined;
    return r ? credentialFromRow(r) : null;
  }

  async listCredentials(userId: string): Promise<CredentialRecord[]> {
    return (
      this.sql('SELECT * FROM credentials WHERE user_id = ? ORDER BY created_at').all(userId) as CredentialRow[]
    ).map(credentialFromRow);
  }

  async completeLogin(o: Parameters<Store['completeLogin']>[0]): Promise<boolean> {
    // One transaction, one commit: the login's writes land together or not at all.
    const tx = this.db.transaction(() => {
      const moved = this.sql(
        `UPDATE credentials SET counter = ?, backed_up = ?, uv_initialized = max(uv_initialized, ?), last_used_at = ?
         WHERE id = ? AND counter = ? AND revoked_at IS NULL`,
      ).run(o.use.counter, b(o.use.backedUp), b(o.use.uv), o.use.at, o.credentialId, o.expectedCounter);
      if (moved.changes !== 1) return false;
      this.insertAuthEventSync(o.event);
      if (o.endSessionHash !== null) {
        this.sql('UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id_hash = ?').run(
          o.use.at,
          o.endSessionHash,
        );
      }
      this.insertSessionSync(o.session);
      return true;
    });
    return tx.immediate();
  }

  async approveWithCredential(o: Parameters<Store['approveWithCredential']>[0]): Promise<boolean> {
    // One transaction: the counter, the auth event and the approval land together or not at all.
    const rollback = new Error('approval not pending');
    const tx = this.db.transaction(() => {
      const moved = this.sql(
        `UPDATE credentials SET counter = ?, backed_up = ?, uv_initialized = max(uv_initialized, ?), last_used_at = ?
         WHERE id = ? AND user_id = ? AND counter = ? AND revoked_at IS NULL`,
      ).run(o.use.counter, b(o.use.backedUp), b(o.use.uv), o.use.at, o.credentialId, o.userId, o.expectedCounter);
      if (moved.changes !== 1) return false;
      this.insertAuthEventSync(o.event);
      const approved = this.sql(
        `UPDATE approvals SET status = 'approved', decided_at = ?, credential_id = ?, event_id = ?
          WHERE id = ? AND user_id = ? AND status = 'pending' AND expires_at > ?`,
      ).run(o.use.at, o.credentialId, o.event.id, o.approvalId, o.userId, o.use.at);
      if (approved.changes !== 1) throw rollback;
      return true;
    });
    try {
      return tx.immediate();
    } catch (e) {
      if (e === rollback) return false;
      throw e;
    }
  }

  async markCredentialCloned(id: string, at: number): Promise<void> {
    this.sql('UPDATE credentials SET cloned_at = coalesce(cloned_at, ?) WHERE id = ?').run(at, id);
  }

  async renameCredential(userId: string, id: string, name: string): Promise<boolean> {
    return (
      this.sql('UPDATE credentials SET name = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(
        name,
        id,
        userId,
      ).changes === 1
    );
  }

  async revokeCredential(userId: string, id: string, at: number): Promise<boolean> {
    return (
      this.sql('UPDATE credentials SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(
        at,
        id,
        userId,
      ).changes === 1
    );
  }

  // ---- enrollment and recovery links ---------------------------------------------------------

  async insertEnrollmentToken(t: EnrollmentTokenRecord): Promise<void> {
    this.sql(
      `INSERT INTO enrollment_tokens (token_hash, user_id, kind, created_by, created_at, expires_at, used_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(t.tokenHash, t.userId, t.kind, t.createdBy, t.createdAt, t.expiresAt, t.usedAt);
  }

  async getEnrollmentToken(tokenHash: string): Promise<EnrollmentTokenRecord | null> {
    const r = this.sql('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(tokenHash) as
      | EnrollmentTokenRow
      | undefined;
    return r
      ? {
          tokenHash: r.token_hash,
          userId: r.user_id,
          kind: r.kind,
          createdBy: r.created_by,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          usedAt: r.used_at,
        }
      : null;
  }

  async consumeEnrollmentToken(tokenHash: string, now: number): Promise<boolean> {
    return (
      this.sql(
        'UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?',
      ).run(now, tokenHash, now).changes === 1
    );
  }

  async hasUsableRecoveryToken(userId: string, now: number): Promise<boolean> {
    return (
      this.sql(
        `SELECT 1 FROM enrollment_tokens WHERE user_id = ? AND kind = 'recovery' AND used_at IS NULL AND expires_at > ?`,
      ).get(userId, now) !== undefined
    );
  }

  // ---- challenges --------------------------------------------------------------------------

  async insertChallenge(c: ChallengeRecord): Promise<void> {
    // Challenges live minutes and matter only to this process (SQLite is single-node): they are
    // kept in memory, which spares two disk writes per ceremony. A restart forgets them; the
    // person simply starts the ceremony again.
    const now = Date.now();
    if (this.challenges.size >= MAX_CHALLENGES) {
      for (const [k, v] of this.challenges) if (v.expiresAt <= now) this.challenges.delete(k);
      // Still full: drop the oldest (Map keeps insertion order).
      while (this.challenges.size >= MAX_CHALLENGES) {
        const first = this.challenges.keys().next();
        if (first.done) break;
        this.challenges.delete(first.value);
      }
    }
    this.challenges.set(c.challenge, { ...c, allowIds: [...c.allowIds] });
  }

  async takeChallenge(challenge: string): Promise<ChallengeRecord | null> {
    // Whoever deletes the entry owns the challenge; a replay finds nothing.
    const c = this.challenges.get(challenge);
    if (c === undefined) return null;
    this.challenges.delete(challenge);
    return c;
  }

  // ---- sessions ----------------------------------------------------------------------------

  async insertSession(x: SessionRecord): Promise<void> {
    this.insertSessionSync(x);
  }

  private insertSessionSync(x: SessionRecord): void {
    this.sql(
      `INSERT INTO sessions (id_hash, user_id, credential_id, auth_event_id, auth_time, uv, created_at, last_seen_at,
           expires_at, revoked_at, ip, user_agent, idp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      x.idHash,
      x.userId,
      x.credentialId,
      x.authEventId,
      x.authTime,
      b(x.uv),
      x.createdAt,
      x.lastSeenAt,
      x.expiresAt,
      x.revokedAt,
      x.ip,
      x.userAgent,
      x.idp === undefined ? null : JSON.stringify(x.idp),
    );
  }

  async setSessionIdp(idHash: string, idp: SessionIdp): Promise<void> {
    this.sql('UPDATE sessions SET idp = ? WHERE id_hash = ?').run(JSON.stringify(idp), idHash);
  }

  async findUserIdentity(provider: string, subject: string): Promise<string | null> {
    const r = this.sql('SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?').get(
      provider,
      subject,
    ) as { user_id: string } | undefined;
    return r?.user_id ?? null;
  }

  async linkUserIdentity(provider: string, subject: string, userId: string, at: number): Promise<void> {
    this.sql(
      `INSERT INTO user_identities (provider, subject, user_id, created_at, last_login_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (provider, subject) DO UPDATE SET last_login_at = excluded.last_login_at`,
    ).run(provider, subject, userId, at, at);
  }

  async listSessions(o: { userId?: string; liveAt: number; limit: number }): Promise<SessionRecord[]> {
    const rows = (
      o.userId === undefined
        ? this.sql(
            'SELECT * FROM sessions WHERE revoked_at IS NULL AND expires_at > ? ORDER BY last_seen_at DESC LIMIT ?',
          ).all(o.liveAt, o.limit)
        : this.sql(
            'SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY last_seen_at DESC LIMIT ?',
          ).all(o.userId, o.liveAt, o.limit)
    ) as SessionRow[];
    return rows.map((r) => this.sessionFromRow(r) as SessionRecord);
  }

  async getSession(idHash: string): Promise<SessionRecord | null> {
    return this.sessionFromRow(
      this.sql('SELECT * FROM sessions WHERE id_hash = ?').get(idHash) as SessionRow | undefined,
    );
  }

  private sessionFromRow(r: SessionRow | undefined): SessionRecord | null {
    return r
      ? {
          idHash: r.id_hash,
          userId: r.user_id,
          credentialId: r.credential_id,
          authEventId: r.auth_event_id,
          authTime: r.auth_time,
          uv: r.uv === 1,
          createdAt: r.created_at,
          lastSeenAt: r.last_seen_at,
          expiresAt: r.expires_at,
          revokedAt: r.revoked_at,
          ip: r.ip,
          userAgent: r.user_agent,
          ...(r.idp === null ? {} : { idp: JSON.parse(r.idp) as SessionIdp }),
        }
      : null;
  }

  async touchSession(idHash: string, at: number): Promise<void> {
    this.sql('UPDATE sessions SET last_seen_at = max(last_seen_at, ?) WHERE id_hash = ?').run(at, idHash);
  }

  async revokeSession(idHash: string, at: number): Promise<void> {
    this.sql('UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id_hash = ?').run(at, idHash);
  }

  async revokeUserSessions(userId: string, at: number): Promise<string[]> {
    return (
      this.sql('UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL RETURNING id_hash').all(
        at,
        userId,
      ) as { id_hash: string }[]
    ).map((r) => r.id_hash);
  }

  async revokeCredentialSessions(credentialId: string, at: number): Promise<string[]> {
    return (
      this.sql(
        'UPDATE sessions SET revoked_at = ? WHERE credential_id = ? AND revoked_at IS NULL RETURNING id_hash',
      ).all(at, credentialId) as { id_hash: string }[]
    ).map((r) => r.id_hash);
  }

  // ---- auth events -------------------------------------------------------------------------

  async insertAuthEvent(e: AuthEventRecord): Promise<void> {
    this.insertAuthEventSync(e);
  }

  private insertAuthEventSync(e: AuthEventRecord): void {
    this.sql(
      `INSERT INTO auth_events (id, at, kind, outcome, reason, user_id, credential_id, aaguid, authenticator, uv,
           backup_eligible, backed_up, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      e.id,
      e.at,
      e.kind,
      e.outcome,
      e.reason,
      e.userId,
      e.credentialId,
      e.aaguid,
      e.authenticator,
      nb(e.uv),
      nb(e.backupEligible),
      nb(e.backedUp),
      e.ip,
      e.userAgent,
    );
  }

  async listAuthEvents(filter: { userId?: string; limit: number }): Promise<AuthEventRecord[]> {
    const rows = (
      filter.userId === undefined
        ? this.sql('SELECT * FROM auth_events ORDER BY at DESC, rowid DESC LIMIT ?').all(filter.limit)
        : this.sql('SELECT * FROM auth_events WHERE user_id = ? ORDER BY at DESC, rowid DESC LIMIT ?').all(
            filter.userId,
            filter.limit,
          )
    ) as AuthEventRow[];
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      kind: r.kind,
      outcome: r.outcome,
      reason: r.reason,
      userId: r.user_id,
      credentialId: r.credential_id,
      aaguid: r.aaguid,
      authenticator: r.authenticator,
      uv: r.uv === null ? null : r.uv === 1,
      backupEligible: r.backup_eligible === null ? null : r.backup_eligible === 1,
      backedUp: r.backed_up === null ? null : r.backed_up === 1,
      ip: r.ip,
      userAgent: r.user_agent,
    }));
  }

  // ---- OAuth artifacts ---------------------------------------------------------------------

  async upsertOAuthArtifact(a: OAuthArtifactRecord): Promise<void> {
    this.sql(
      `INSERT INTO oauth_artifacts (model, id, payload, grant_id, user_code, uid, expires_at, consumed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
           user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
    ).run(a.model, a.id, a.payload, a.grantId, a.userCode, a.uid, a.expiresAt, a.consumedAt);
  }

  async insertOAuthArtifactIfAbsent(a: OAuthArtifactRecord, now: number): Promise<boolean> {
    const tx = this.db.transaction(() => {
      this.sql('DELETE FROM oauth_artifacts WHERE model = ? AND id = ? AND expires_at <= ?').run(a.model, a.id, now);
      return (
        this.sql(
          `INSERT INTO oauth_artifacts (model, id, payload, grant_id, user_code, uid, expires_at, consumed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, id) DO NOTHING`,
        ).run(a.model, a.id, a.payload, a.grantId, a.userCode, a.uid, a.expiresAt, a.consumedAt).changes === 1
      );
    });
    return tx.immediate();
  }

  async findOAuthArtifact(
    model: string,
    by: 'id' | 'userCode' | 'uid',
    value: string,
    now: number,
  ): Promise<OAuthArtifactRecord | null> {
    const column = by === 'id' ? 'id' : by === 'userCode' ? 'user_code' : 'uid';
    const r = this.sql(
      `SELECT * FROM oauth_artifacts WHERE model = ? AND ${column} = ? AND (expires_at IS NULL OR expires_at > ?)`,
    ).get(model, value, now) as OAuthArtifactRow | undefined;
    if (!r) return null;
    return {
      model: r.model,
      id: r.id,
      payload: r.payload,
      grantId: r.grant_id,
      userCode: r.user_code,
      uid: r.uid,
      expiresAt: r.expires_at,
      consumedAt: r.consumed_at,
    };
  }

  async consumeOAuthArtifact(model: string, id: string, at: number): Promise<boolean> {
    // Only the first consumer wins (a code or refresh token raced by two requests).
    return (
      this.sql('UPDATE oauth_artifacts SET consumed_at = ? WHERE model = ? AND id = ? AND consumed_at IS NULL').run(
        at,
        model,
        id,
      ).changes === 1
    );
  }

  async destroyOAuthArtifact(model: string, id: string): Promise<void> {
    this.sql('DELETE FROM oauth_artifacts WHERE model = ? AND id = ?').run(model, id);
  }

  async listOAuthGrants(o: { accountId?: string; now: number; limit: number }): Promise<OAuthGrantSummary[]> {
    // oidc-provider's Grant payload: accountId, clientId, iat and exp (seconds).
    const rows = this.sql(
      `SELECT id, json_extract(payload, '$.accountId') AS account_id, json_extract(payload, '$.clientId') AS client_id,
              json_extract(payload, '$.iat') AS iat, expires_at
         FROM oauth_artifacts
        WHERE model = 'Grant' AND (expires_at IS NULL OR expires_at > ?)
          AND (? IS NULL OR json_extract(payload, '$.accountId') = ?)
        ORDER BY iat DESC LIMIT ?`,
    ).all(o.now, o.accountId ?? null, o.accountId ?? null, o.limit) as {
      id: string;
      account_id: string | null;
      client_id: string | null;
      iat: number | null;
      expires_at: number | null;
    }[];
    return rows.map((r) => ({
      id: r.id,
      accountId: r.account_id ?? '',
      clientId: r.client_id ?? '',
      createdAt: (r.iat ?? 0) * 1000,
      expiresAt: r.expires_at,
    }));
  }

  async revokeOAuthGrant(grantId: string): Promise<number> {
    const tx = this.db.transaction(
      () =>
        this.sql('DELETE FROM oauth_artifacts WHERE grant_id = ?').run(grantId).changes +
        this.sql("DELETE FROM oauth_artifacts WHERE model = 'Grant' AND id = ?").run(grantId).changes,
    );
    return tx.immediate();
  }

  async purgeOAuthArtifacts(now: number): Promise<number> {
    return this.sql('DELETE FROM oauth_artifacts WHERE expires_at IS NOT NULL AND expires_at <= ?').run(now).changes;
  }

  // ---- service principals ------------------------------------------------------------------

  private spFromRow(r: ServicePrincipalRow | undefined): ServicePrincipalRecord | null {
    if (!r) return null;
    return {
      id: r.id,
      name: r.name,
      description: r.description,
      roles: JSON.parse(r.roles) as string[],
      jwks: r.jwks,
      createdAt: r.created_at,
      createdBy: r.created_by,
      disabledAt: r.disabled_at,
    };
  }

  async insertServicePrincipal(sp: ServicePrincipalRecord): Promise<void> {
    this.sql(
      `INSERT INTO service_principals (id, name, description, roles, jwks, created_at, created_by, disabled_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(sp.id, sp.name, sp.description, JSON.stringify(sp.roles), sp.jwks, sp.createdAt, sp.createdBy, sp.disabledAt);
  }

  async getServicePrincipal(id: string): Promise<ServicePrincipalRecord | null> {
    return this.spFromRow(this.sql('SELECT * FROM service_principals WHERE id = ?').get(id) as ServicePrincipalRow);
  }

  async getServicePrincipalByName(name: string): Promise<ServicePrincipalRecord | null> {
    return this.spFromRow(this.sql('SELECT * FROM service_principals WHERE name = ?').get(name) as ServicePrincipalRow);
  }

  async listServicePrincipals(): Promise<ServicePrincipalRecord[]> {
    return (this.sql('SELECT * FROM service_principals ORDER BY name').all() as ServicePrincipalRow[]).map(
      (r) => this.spFromRow(r) as ServicePrincipalRecord,
    );
  }

  async setServicePrincipalJwks(id: string, jwks: string | null): Promise<boolean> {
    return this.sql('UPDATE service_principals SET jwks = ? WHERE id = ?').run(jwks, id).changes === 1;
  }

  async disableServicePrincipal(id: string, at: number): Promise<boolean> {
    return (
      this.sql('UPDATE service_principals SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL').run(at, id)
        .changes === 1
    );
  }

  async insertServicePrincipalSecret(x: ServicePrincipalSecretRecord): Promise<void> {
    this.sql(
      `INSERT INTO service_principal_secrets (id, sp_id, hash, created_at, expires_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(x.id, x.spId, x.hash, x.createdAt, x.expiresAt, x.revokedAt);
  }

  async listServicePrincipalSecrets(spId: string): Promise<ServicePrincipalSecretRecord[]> {
    const rows = this.sql('SELECT * FROM service_principal_secrets WHERE sp_id = ? ORDER BY created_at DESC').all(
      spId,
    ) as {
      id: string;
      sp_id: string;
      hash: string;
      created_at: number;
      expires_at: number;
      revoked_at: number | null;
    }[];
    return rows.map((r) => ({
      id: r.id,
      spId: r.sp_id,
      hash: r.hash,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      revokedAt: r.revoked_at,
    }));
  }

  async revokeServicePrincipalSecret(spId: string, secretId: string, at: number): Promise<boolean> {
    return (
      this.sql(
        'UPDATE service_principal_secrets SET revoked_at = ? WHERE sp_id = ? AND id = ? AND revoked_at IS NULL',
      ).run(at, spId, secretId).changes === 1
    );
  }

  // ---- revocations -------------------------------------------------------------------------

  async insertRevocation(r: RevocationRecord): Promise<void> {
    this.sql(
      `INSERT INTO revocations (id, revoked_at, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`,
    ).run(r.id, r.revokedAt, r.expiresAt);
  }

  async listRevocationsSince(since: number): Promise<RevocationRecord[]> {
    return (
      this.sql('SELECT * FROM revocations WHERE revoked_at >= ? ORDER BY revoked_at').all(since) as {
        id: string;
        revoked_at: number;
        expires_at: number;
      }[]
    ).map((r) => ({ id: r.id, revokedAt: r.revoked_at, expiresAt: r.expires_at }));
  }

  async purgeRevocations(now: number): Promise<number> {
    return this.sql('DELETE FROM revocations WHERE expires_at <= ?').run(now).changes;
  }

  // ---- role bindings -----------------------------------------------------------------------

  async listRoleBindings(): Promise<RoleBindingRecord[]> {
    return (
      this.sql('SELECT * FROM role_bindings ORDER BY subject_type, subject, role').all() as {
        id: string;
        subject_type: 'group' | 'user';
        subject: string;
        role: string;
        created_at: number;
        created_by: string;
      }[]
    ).map((r) => ({
      id: r.id,
      subjectType: r.subject_type,
      subject: r.subject,
      role: r.role,
      createdAt: r.created_at,
      createdBy: r.created_by,
    }));
  }

  async insertRoleBinding(b: RoleBindingRecord): Promise<boolean> {
    return (
      this.sql(
        `INSERT INTO role_bindings (id, subject_type, subject, role, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (subject_type, subject, role) DO NOTHING`,
      ).run(b.id, b.subjectType, b.subject, b.role, b.createdAt, b.createdBy).changes === 1
    );
  }

  async deleteRoleBinding(id: string): Promise<RoleBindingRecord | null> {
    // One statement: of two concurrent deletes, only one gets the binding back.
    const r = this.sql('DELETE FROM role_bindings WHERE id = ? RETURNING *').get(id) as
      | {
          id: string;
          subject_type: 'group' | 'user';
          subject: string;
          role: string;
          created_at: number;
          created_by: string;
        }
      | undefined;
    return r === undefined
      ? null
      : {
          id: r.id,
          subjectType: r.subject_type,
          subject: r.subject,
          role: r.role,
          createdAt: r.created_at,
          createdBy: r.created_by,
        };
  }

  // ---- SCIM tokens ----------------------------------------------------------------------------

  async insertAgentGrant(g: AgentGrantRecord): Promise<void> {
    this.sql(
      'INSERT INTO agent_grants (id, user_id, agent_id, actions, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(g.id, g.userId, g.agentId, JSON.stringify(g.actions), g.createdAt, g.expiresAt, g.revokedAt);
  }

  async getAgentGrant(id: string): Promise<AgentGrantRecord | null> {
    const r = this.sql('SELECT * FROM agent_grants WHERE id = ?').get(id) as AgentGrantRow | undefined;
    return r ? agentGrantFromRow(r) : null;
  }

  async listAgentGrants(userId: string): Promise<AgentGrantRecord[]> {
    return (
      this.sql('SELECT * FROM agent_grants WHERE user_id = ? ORDER BY created_at DESC, rowid DESC').all(
        userId,
      ) as AgentGrantRow[]
    ).map(agentGrantFromRow);
  }

  async revokeAgentGrant(userId: string, id: string, at: number): Promise<boolean> {
    return (
      this.sql('UPDATE agent_grants SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(
        at,
        id,
        userId,
      ).changes === 1
    );
  }

  async insertApproval(a: ApprovalRecord): Promise<void> {
    this.sql(
      `INSERT INTO approvals (id, user_id, agent_id, grant_id, upstream, method, path, query, action, resource,
         content_type, body, body_sha256, digest, status, created_at, expires_at, decided_at, credential_id, event_id, used_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      a.id,
      a.userId,
      a.agentId,
      a.grantId,
      a.upstream,
      a.method,
      a.path,
      a.query,
      a.action,
      a.resource,
      a.contentType,
      Buffer.from(a.body),
      a.bodySha256,
      a.digest,
      a.status,
      a.createdAt,
      a.expiresAt,
      a.decidedAt,
      a.credentialId,
      a.eventId,
      a.usedAt,
    );
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    const r = this.sql('SELECT * FROM approvals WHERE id = ?').get(id) as ApprovalRow | undefined;
    return r ? approvalFromRow(r) : null;
  }

  async listApprovals(userId: string, limit: number): Promise<ApprovalRecord[]> {
    return (
      this.sql('SELECT * FROM approvals WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?').all(
        userId,
        limit,
      ) as ApprovalRow[]
    ).map(approvalFromRow);
  }

  async denyApproval(id: string, userId: string, at: number): Promise<boolean> {
    return (
      this.sql(
        `UPDATE approvals SET status = 'denied', decided_at = ?
          WHERE id = ? AND user_id = ? AND status = 'pending' AND expires_at > ?`,
      ).run(at, id, userId, at).changes === 1
    );
  }

  async useApproval(id: string, digest: string, at: number): Promise<boolean> {
    return (
      this.sql(
        `UPDATE approvals SET status = 'used', used_at = ?
          WHERE id = ? AND digest = ? AND status = 'approved' AND expires_at > ?`,
      ).run(at, id, digest, at).changes === 1
    );
  }

  async insertScimToken(t: ScimTokenRecord): Promise<void> {
    this.sql(
      'INSERT INTO scim_tokens (id, name, hash, created_at, created_by, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(t.id, t.name, t.hash, t.createdAt, t.createdBy, t.lastUsedAt, t.revokedAt);
  }

  async findScimToken(hash: string): Promise<ScimTokenRecord | null> {
    const r = this.sql('SELECT * FROM scim_tokens WHERE hash = ?').get(hash) as ScimTokenRow | undefined;
    return r === undefined ? null : scimTokenFromRow(r);
  }

  async listScimTokens(): Promise<ScimTokenRecord[]> {
    return (this.sql('SELECT * FROM scim_tokens ORDER BY created_at').all() as ScimTokenRow[]).map(scimTokenFromRow);
  }

  async revokeScimToken(id: string, at: number): Promise<boolean> {
    return (
      this.sql('UPDATE scim_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes === 1
    );
  }

  async touchScimToken(id: string, at: number): Promise<void> {
    this.sql('UPDATE scim_tokens SET last_used_at = ? WHERE id = ?').run(at, id);
  }

  // ---- federation trusts ---------------------------------------------------------------------

  async listFederationTrusts(): Promise<FederationTrustRecord[]> {
    return (
      this.sql('SELECT * FROM federation_trusts ORDER BY name').all() as {
        name: string;
        spec: string;
        created_at: number;
        created_by: string;
      }[]
    ).map((r) => ({ name: r.name, spec: r.spec, createdAt: r.created_at, createdBy: r.created_by }));
  }

  async insertFederationTrust(t: FederationTrustRecord): Promise<boolean> {
    return (
      this.sql(
        'INSERT INTO federation_trusts (name, spec, created_at, created_by) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ).run(t.name, t.spec, t.createdAt, t.createdBy).changes === 1
    );
  }

  async deleteFederationTrust(name: string): Promise<FederationTrustRecord | null> {
    const r = this.sql('DELETE FROM federation_trusts WHERE name = ? RETURNING *').get(name) as
      | { name: string; spec: string; created_at: number; created_by: string }
      | undefined;
    return r === undefined ? null : { name: r.name, spec: r.spec, createdAt: r.created_at, createdBy: r.created_by };
  }

  // ---- audit outbox --------------------------------------------------------------------------

  async enqueueAuditEntry(e: { id: string; at: number; entry: string }): Promise<void> {
    this.sql('INSERT INTO audit_outbox (id, at, entry) VALUES (?, ?, ?)').run(e.id, e.at, e.entry);
  }

  async listAuditOutbox(limit: number): Promise<{ id: string; at: number; entry: string }[]> {
    return this.sql('SELECT id, at, entry FROM audit_outbox ORDER BY at, id LIMIT ?').all(limit) as {
      id: string;
      at: number;
      entry: string;
    }[];
  }

  async deleteAuditOutbox(ids: readonly string[]): Promise<void> {
    const del = this.sql('DELETE FROM audit_outbox WHERE id = ?');
    this.db.transaction(() => {
      for (const id of ids) del.run(id);
    })();
  }

  async retireSigningKeys(use: SigningKeyRecord['use'], at: number): Promise<void> {
    this.sql('UPDATE signing_keys SET retires_at = ? WHERE use = ? AND (retires_at IS NULL OR retires_at > ?)').run(
      at,
      use,
      at,
    );
  }
}

const MAX_CHALLENGES = 100_000;
const b = (v: boolean): number => (v ? 1 : 0);
const nb = (v: boolean | null): number | null => (v === null ? null : v ? 1 : 0);

interface UserRow {
  id: string;
  email: string;
  display_name: string;
  webauthn_id: string;
  created_at: number;
  disabled_at: number | null;
  external_id: string | null;
}

interface GroupRow {
  id: string;
  name: string;
  description: string;
  created_at: number;
  created_by: string;
  external_id: string | null;
}

function groupFromRow(r: GroupRow): GroupRecord {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    createdAt: r.created_at,
    createdBy: r.created_by,
    externalId: r.external_id,
  };
}

interface AgentGrantRow {
  id: string;
  user_id: string;
  agent_id: string;
  actions: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

function agentGrantFromRow(r: AgentGrantRow): AgentGrantRecord {
  return {
    id: r.id,
    userId: r.user_id,
    agentId: r.agent_id,
    actions: JSON.parse(r.actions) as string[],
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
  };
}

interface ApprovalRow {
  id: string;
  user_id: string;
  agent_id: string;
  grant_id: string;
  upstream: string;
  method: string;
  path: string;
  query: string;
  action: string;
  resource: string;
  content_type: string | null;
  body: Buffer;
  body_sha256: string;
  digest: string;
  status: ApprovalRecord['status'];
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  credential_id: string | null;
  event_id: string | null;
  used_at: number | null;
}

function approvalFromRow(r: ApprovalRow): ApprovalRecord {
  return {
    id: r.id,
    userId: r.user_id,
    agentId: r.agent_id,
    grantId: r.grant_id,
    upstream: r.upstream,
    method: r.method,
    path: r.path,
    query: r.query,
    action: r.action,
    resource: r.resource,
    contentType: r.content_type,
    body: new Uint8Array(r.body),
    bodySha256: r.body_sha256,
    digest: r.digest,
    status: r.status,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    decidedAt: r.decided_at,
    credentialId: r.credential_id,
    eventId: r.event_id,
    usedAt: r.used_at,
  };
}

interface ScimTokenRow {
  id: string;
  name: string;
  hash: string;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
}

function scimTokenFromRow(r: ScimTokenRow): ScimTokenRecord {
  return {
    id: r.id,
    name: r.name,
    hash: r.hash,
    createdAt: r.created_at,
    createdBy: r.created_by,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

interface CredentialRow {
  id: string;
  user_id: string;
  public_key: Buffer;
  counter: number;
  aaguid: string;
  transports: string;
  backup_eligible: number;
  backed_up: number;
  uv_initialized: number;
  attestation_fmt: string;
  attested: number;
  name: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  cloned_at: number | null;
}

function credentialFromRow(r: CredentialRow): CredentialRecord {
  return {
    id: r.id,
    userId: r.user_id,
    publicKey: new Uint8Array(r.public_key),
    counter: r.counter,
    aaguid: r.aaguid,
    transports: JSON.parse(r.transports) as string[],
    backupEligible: r.backup_eligible === 1,
    backedUp: r.backed_up === 1,
    uvInitialized: r.uv_initialized === 1,
    attestationFmt: r.attestation_fmt,
    attested: r.attested === 1,
    name: r.name,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
    clonedAt: r.cloned_at,
  };
}

interface EnrollmentTokenRow {
  token_hash: string;
  user_id: string;
  kind: 'enroll' | 'recovery';
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

interface SessionRow {
  id_hash: string;
  user_id: string;
  credential_id: string;
  auth_event_id: string;
  auth_time: number;
  uv: number;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  revoked_at: number | null;
  ip: string;
  user_agent: string;
  idp: string | null;
}

interface AuthEventRow {
  id: string;
  at: number;
  kind: string;
  outcome: 'success' | 'failure';
  reason: string | null;
  user_id: string | null;
  credential_id: string | null;
  aaguid: string | null;
  authenticator: string | null;
  uv: number | null;
  backup_eligible: number | null;
  backed_up: number | null;
  ip: string;
  user_agent: string;
}

interface OAuthArtifactRow {
  model: string;
  id: string;
  payload: string;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  expires_at: number | null;
  consumed_at: number | null;
}

interface ServicePrincipalRow {
  id: string;
  name: string;
  description: string;
  roles: string;
  jwks: string | null;
  created_at: number;
  created_by: string;
  disabled_at: number | null;
}
