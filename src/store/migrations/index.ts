/**
 * Versioned migrations. Each runs in one transaction together with the row that records it,
 * so a migration that fails half-way leaves the database exactly at the previous version.
 * Never edit a migration that has shipped; add the next one.
 *
 * The PostgreSQL text says the same as the SQLite text, with these translations:
 * - epoch milliseconds are BIGINT, flags BOOLEAN, blobs BYTEA; JSON stays TEXT holding JSON;
 * - text that is sorted, or compared regardless of case, is COLLATE "C": PostgreSQL then sorts
 *   it byte-wise and lower() folds only ASCII, as SQLite's BINARY and NOCASE do, whatever the
 *   database's locale;
 * - a NOCASE unique column is a unique index on lower(column), and is looked up by it;
 * - where SQLite orders ties by rowid, PostgreSQL has an identity column `seq`;
 * - WebAuthn challenges, which the SQLite store keeps in its process (one node), are a table
 *   that every replica shares.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  /** Optional in the type only so that a test can make an SQLite-only migration; every shipped one has it. */
  postgres?: string;
}

/** A migration both stores can apply. */
export type SharedMigration = Migration & { postgres: string };

export const MIGRATIONS: readonly SharedMigration[] = [
  {
    version: 1,
    name: 'meta',
    sqlite: `
      CREATE TABLE keygate_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;`,
    postgres: `
      CREATE TABLE keygate_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );`,
  },
  {
    version: 2,
    name: 'signing_keys',
    sqlite: `
      CREATE TABLE signing_keys (
        kid         TEXT PRIMARY KEY,
        alg         TEXT NOT NULL CHECK (alg IN ('ES256')),
        use         TEXT NOT NULL CHECK (use IN ('assertion', 'token', 'audit')),
        public_jwk  TEXT NOT NULL,
        private_jwk TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        retires_at  INTEGER
      ) STRICT;
      CREATE INDEX signing_keys_use ON signing_keys (use, created_at);`,
    postgres: `
      CREATE TABLE signing_keys (
        kid         TEXT PRIMARY KEY,
        alg         TEXT NOT NULL CHECK (alg IN ('ES256')),
        use         TEXT NOT NULL CHECK (use IN ('assertion', 'token', 'audit')),
        public_jwk  TEXT NOT NULL,
        private_jwk TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        retires_at  BIGINT
      );
      CREATE INDEX signing_keys_use ON signing_keys (use, created_at);`,
  },
  {
    version: 3,
    name: 'people',
    sqlite: `
      CREATE TABLE users (
        id             TEXT PRIMARY KEY,
        email          TEXT NOT NULL UNIQUE COLLATE NOCASE,
        display_name   TEXT NOT NULL,
        -- WebAuthn user handle: random, never the email (WebAuthn L3 §14.6.1).
        webauthn_id    TEXT NOT NULL UNIQUE,
        created_at     INTEGER NOT NULL,
        disabled_at    INTEGER
      ) STRICT;
      CREATE TABLE user_roles (
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role    TEXT NOT NULL,
        PRIMARY KEY (user_id, role)
      ) STRICT;
      CREATE TABLE credentials (
        id               TEXT PRIMARY KEY,          -- base64url credential id; unique across all users
        user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        public_key       BLOB NOT NULL,
        counter          INTEGER NOT NULL,
        aaguid           TEXT NOT NULL,
        transports       TEXT NOT NULL,             -- JSON array
        backup_eligible  INTEGER NOT NULL,
        backed_up        INTEGER NOT NULL,
        uv_initialized   INTEGER NOT NULL,
        attestation_fmt  TEXT NOT NULL,
        attested         INTEGER NOT NULL,          -- attestation statement verified against policy
        name             TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        last_used_at     INTEGER,
        revoked_at       INTEGER,
        cloned_at        INTEGER                    -- counter went backwards: possibly cloned
      ) STRICT;
      CREATE INDEX credentials_user ON credentials (user_id);
      CREATE TABLE enrollment_tokens (
        token_hash  TEXT PRIMARY KEY,               -- SHA-256 of the token; the token itself is never stored
        user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'recovery')),
        created_by  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER
      ) STRICT;
      CREATE INDEX enrollment_tokens_user ON enrollment_tokens (user_id);
      CREATE TABLE sessions (
        id_hash           TEXT PRIMARY KEY,         -- SHA-256 of the cookie value
        user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        credential_id     TEXT NOT NULL,
        auth_event_id     TEXT NOT NULL,
        auth_time         INTEGER NOT NULL,
        uv                INTEGER NOT NULL,
        created_at        INTEGER NOT NULL,
        last_seen_at      INTEGER NOT NULL,
        expires_at        INTEGER NOT NULL,         -- absolute lifetime
        revoked_at        INTEGER,
        ip                TEXT NOT NULL,
        user_agent        TEXT NOT NULL
      ) STRICT;
      CREATE INDEX sessions_user ON sessions (user_id);
      CREATE TABLE auth_events (
        id              TEXT PRIMARY KEY,
        at              INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
        reason          TEXT,
        user_id         TEXT,
        credential_id   TEXT,
        aaguid          TEXT,
        authenticator   TEXT,
        uv              INTEGER,
        backup_eligible INTEGER,
        backed_up       INTEGER,
        ip              TEXT NOT NULL,
        user_agent      TEXT NOT NULL
      ) STRICT;
      CREATE INDEX auth_events_user ON auth_events (user_id, at);`,
    postgres: `
      CREATE TABLE users (
        id             TEXT PRIMARY KEY,
        email          TEXT COLLATE "C" NOT NULL,
        display_name   TEXT COLLATE "C" NOT NULL,
        -- WebAuthn user handle: random, never the email (WebAuthn L3 §14.6.1).
        webauthn_id    TEXT NOT NULL UNIQUE,
        created_at     BIGINT NOT NULL,
        disabled_at    BIGINT
      );
      -- SQLite's email UNIQUE COLLATE NOCASE.
      CREATE UNIQUE INDEX users_email ON users (lower(email));
      CREATE TABLE user_roles (
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role    TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, role)
      );
      CREATE TABLE credentials (
        id               TEXT PRIMARY KEY,          -- base64url credential id; unique across all users
        user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        public_key       BYTEA NOT NULL,
        counter          BIGINT NOT NULL,
        aaguid           TEXT NOT NULL,
        transports       TEXT NOT NULL,             -- JSON array
        backup_eligible  BOOLEAN NOT NULL,
        backed_up        BOOLEAN NOT NULL,
        uv_initialized   BOOLEAN NOT NULL,
        attestation_fmt  TEXT NOT NULL,
        attested         BOOLEAN NOT NULL,          -- attestation statement verified against policy
        name             TEXT NOT NULL,
        created_at       BIGINT NOT NULL,
        last_used_at     BIGINT,
        revoked_at       BIGINT,
        cloned_at        BIGINT                     -- counter went backwards: possibly cloned
      );
      CREATE INDEX credentials_user ON credentials (user_id);
      CREATE TABLE enrollment_tokens (
        token_hash  TEXT PRIMARY KEY,               -- SHA-256 of the token; the token itself is never stored
        user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'recovery')),
        created_by  TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        used_at     BIGINT
      );
      CREATE INDEX enrollment_tokens_user ON enrollment_tokens (user_id);
      CREATE TABLE sessions (
        id_hash           TEXT PRIMARY KEY,         -- SHA-256 of the cookie value
        user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        credential_id     TEXT NOT NULL,
        auth_event_id     TEXT NOT NULL,
        auth_time         BIGINT NOT NULL,
        uv                BOOLEAN NOT NULL,
        created_at        BIGINT NOT NULL,
        last_seen_at      BIGINT NOT NULL,
        expires_at        BIGINT NOT NULL,          -- absolute lifetime
        revoked_at        BIGINT,
        ip                TEXT NOT NULL,
        user_agent        TEXT NOT NULL
      );
      CREATE INDEX sessions_user ON sessions (user_id);
      CREATE TABLE auth_events (
        id              TEXT PRIMARY KEY,
        seq             BIGINT GENERATED ALWAYS AS IDENTITY,
        at              BIGINT NOT NULL,
        kind            TEXT NOT NULL,
        outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
        reason          TEXT,
        user_id         TEXT,
        credential_id   TEXT,
        aaguid          TEXT,
        authenticator   TEXT,
        uv              BOOLEAN,
        backup_eligible BOOLEAN,
        backed_up       BOOLEAN,
        ip              TEXT NOT NULL,
        user_agent      TEXT NOT NULL
      );
      CREATE INDEX auth_events_user ON auth_events (user_id, at);
      -- Shared by the replicas; taking one deletes it.
      CREATE TABLE webauthn_challenges (
        challenge       TEXT PRIMARY KEY,
        kind            TEXT NOT NULL,
        user_id         TEXT,
        binding_hash    TEXT NOT NULL,
        enrollment_hash TEXT,
        allow_ids       TEXT NOT NULL,              -- JSON array
        expires_at      BIGINT NOT NULL
      );
      CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);`,
  },
  {
    version: 4,
    name: 'tokens',
    sqlite: `
      -- oidc-provider's artifacts (codes, device codes, refresh tokens, grants, interactions).
      CREATE TABLE oauth_artifacts (
        model       TEXT NOT NULL,
        id          TEXT NOT NULL,
        payload     TEXT NOT NULL,
        grant_id    TEXT,
        user_code   TEXT,
        uid         TEXT,
        expires_at  INTEGER,
        consumed_at INTEGER,
        PRIMARY KEY (model, id)
      ) STRICT;
      CREATE INDEX oauth_artifacts_grant ON oauth_artifacts (grant_id) WHERE grant_id IS NOT NULL;
      CREATE INDEX oauth_artifacts_user_code ON oauth_artifacts (model, user_code) WHERE user_code IS NOT NULL;
      CREATE INDEX oauth_artifacts_uid ON oauth_artifacts (model, uid) WHERE uid IS NOT NULL;
      CREATE INDEX oauth_artifacts_expiry ON oauth_artifacts (expires_at) WHERE expires_at IS NOT NULL;
      CREATE TABLE service_principals (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        description TEXT NOT NULL,
        roles       TEXT NOT NULL,            -- JSON array of role names
        jwks        TEXT,                     -- public keys for private_key_jwt
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        disabled_at INTEGER
      ) STRICT;
      CREATE TABLE service_principal_secrets (
        id         TEXT PRIMARY KEY,
        sp_id      TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
        hash       TEXT NOT NULL,             -- scrypt; the secret itself is never stored
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
      ) STRICT;
      CREATE INDEX service_principal_secrets_sp ON service_principal_secrets (sp_id);
      CREATE TABLE revocations (
        id         TEXT PRIMARY KEY,          -- jti:<id> or grant:<id>
        revoked_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX revocations_at ON revocations (revoked_at);`,
    postgres: `
      -- oidc-provider's artifacts (codes, device codes, refresh tokens, grants, interactions).
      CREATE TABLE oauth_artifacts (
        model       TEXT NOT NULL,
        id          TEXT NOT NULL,
        payload     TEXT NOT NULL,
        grant_id    TEXT,
        user_code   TEXT,
        uid         TEXT,
        expires_at  BIGINT,
        consumed_at BIGINT,
        PRIMARY KEY (model, id)
      );
      CREATE INDEX oauth_artifacts_grant ON oauth_artifacts (grant_id) WHERE grant_id IS NOT NULL;
      CREATE INDEX oauth_artifacts_user_code ON oauth_artifacts (model, user_code) WHERE user_code IS NOT NULL;
      CREATE INDEX oauth_artifacts_uid ON oauth_artifacts (model, uid) WHERE uid IS NOT NULL;
      CREATE INDEX oauth_artifacts_expiry ON oauth_artifacts (expires_at) WHERE expires_at IS NOT NULL;
      CREATE TABLE service_principals (
        id          TEXT PRIMARY KEY,
        name        TEXT COLLATE "C" NOT NULL,
        description TEXT NOT NULL,
        roles       TEXT NOT NULL,            -- JSON array of role names
        jwks        TEXT,                     -- public keys for private_key_jwt
        created_at  BIGINT NOT NULL,
        created_by  TEXT NOT NULL,
        disabled_at BIGINT
      );
      -- SQLite's name UNIQUE COLLATE NOCASE.
      CREATE UNIQUE INDEX service_principals_name ON service_principals (lower(name));
      CREATE TABLE service_principal_secrets (
        id         TEXT PRIMARY KEY,
        sp_id      TEXT NOT NULL REFERENCES service_principals (id) ON DELETE CASCADE,
        hash       TEXT NOT NULL,             -- scrypt; the secret itself is never stored
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE INDEX service_principal_secrets_sp ON service_principal_secrets (sp_id);
      CREATE TABLE revocations (
        id         TEXT PRIMARY KEY,          -- jti:<id> or grant:<id>
        seq        BIGINT GENERATED ALWAYS AS IDENTITY,
        revoked_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE INDEX revocations_at ON revocations (revoked_at, seq);`,
  },
  {
    version: 5,
    name: 'audit_outbox',
    sqlite: `
      -- Audit entries written where no gateway runs (the admin CLI on the local store): the
      -- gateway moves them into the audit chain (at least once; each keeps its own id).
      CREATE TABLE audit_outbox (
        id    TEXT PRIMARY KEY,
        at    INTEGER NOT NULL,
        entry TEXT NOT NULL
      ) STRICT;
      CREATE INDEX audit_outbox_at ON audit_outbox (at);`,
    postgres: `
      -- Audit entries written where no gateway runs (the admin CLI on the local store): the
      -- gateway moves them into the audit chain (at least once; each keeps its own id).
      CREATE TABLE audit_outbox (
        id    TEXT COLLATE "C" PRIMARY KEY,
        at    BIGINT NOT NULL,
        entry TEXT NOT NULL
      );
      CREATE INDEX audit_outbox_at ON audit_outbox (at);`,
  },
  {
    version: 6,
    name: 'role_bindings',
    sqlite: `
      -- Bindings made through the admin API, in addition to those in keygate.yaml.
      CREATE TABLE role_bindings (
        id           TEXT PRIMARY KEY,
        subject_type TEXT NOT NULL CHECK (subject_type IN ('group', 'user')),
        subject      TEXT NOT NULL,
        role         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        created_by   TEXT NOT NULL,
        UNIQUE (subject_type, subject, role)
      ) STRICT;`,
    postgres: `
      -- Bindings made through the admin API, in addition to those in keygate.yaml.
      CREATE TABLE role_bindings (
        id           TEXT PRIMARY KEY,
        subject_type TEXT COLLATE "C" NOT NULL CHECK (subject_type IN ('group', 'user')),
        subject      TEXT COLLATE "C" NOT NULL,
        role         TEXT COLLATE "C" NOT NULL,
        created_at   BIGINT NOT NULL,
        created_by   TEXT NOT NULL,
        UNIQUE (subject_type, subject, role)
      );`,
  },
  {
    version: 7,
    name: 'groups_and_trusts',
    sqlite: `
      -- Keygate groups: made through the admin API (and, later, by SCIM). Roles come from groups
      -- through bindings; a person's groups are read with the person, so a change applies to
      -- their next request.
      CREATE TABLE groups (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL
      ) STRICT;
      CREATE TABLE group_members (
        group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (group_id, user_id)
      ) STRICT;
      CREATE INDEX group_members_user ON group_members (user_id);
      -- Workload federation trusts made through the admin API, in addition to keygate.yaml's.
      CREATE TABLE federation_trusts (
        name       TEXT PRIMARY KEY,
        spec       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
      ) STRICT;`,
    postgres: `
      -- Keygate groups: made through the admin API (and, later, by SCIM). Roles come from groups
      -- through bindings; a person's groups are read with the person, so a change applies to
      -- their next request.
      CREATE TABLE groups (
        id          TEXT PRIMARY KEY,
        name        TEXT COLLATE "C" NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created_at  BIGINT NOT NULL,
        created_by  TEXT NOT NULL
      );
      CREATE TABLE group_members (
        group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        added_at BIGINT NOT NULL,
        PRIMARY KEY (group_id, user_id)
      );
      CREATE INDEX group_members_user ON group_members (user_id);
      -- Workload federation trusts made through the admin API, in addition to keygate.yaml's.
      CREATE TABLE federation_trusts (
        name       TEXT COLLATE "C" PRIMARY KEY,
        spec       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL
      );`,
  },
  {
    version: 8,
    name: 'identity_providers',
    sqlite: `
      -- A person's accounts at corporate identity providers: (provider, subject) → user.
      CREATE TABLE user_identities (
        provider      TEXT NOT NULL,
        subject       TEXT NOT NULL,
        user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at    INTEGER NOT NULL,
        last_login_at INTEGER NOT NULL,
        PRIMARY KEY (provider, subject)
      ) STRICT;
      CREATE INDEX user_identities_user ON user_identities (user_id);
      -- The provider login behind a session (JSON: provider, event, groups and when they were
      -- confirmed, the sealed refresh token); null for a key-only login. A session made by the
      -- provider alone (trust-idp-mfa) has credential_id ''.
      ALTER TABLE sessions ADD COLUMN idp TEXT;`,
    postgres: `
      -- A person's accounts at corporate identity providers: (provider, subject) → user.
      CREATE TABLE user_identities (
        provider      TEXT NOT NULL,
        subject       TEXT NOT NULL,
        user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at    BIGINT NOT NULL,
        last_login_at BIGINT NOT NULL,
        PRIMARY KEY (provider, subject)
      );
      CREATE INDEX user_identities_user ON user_identities (user_id);
      -- The provider login behind a session (JSON: provider, event, groups and when they were
      -- confirmed, the sealed refresh token); null for a key-only login. A session made by the
      -- provider alone (trust-idp-mfa) has credential_id ''.
      ALTER TABLE sessions ADD COLUMN idp TEXT;`,
  },
  {
    version: 9,
    name: 'scim',
    sqlite: `
      -- What a SCIM client calls the person or group on its side (RFC 7643 §3.1 externalId).
      ALTER TABLE users ADD COLUMN external_id TEXT;
      ALTER TABLE groups ADD COLUMN external_id TEXT;
      -- Bearer tokens SCIM clients present; only the SHA-256 of each is kept.
      CREATE TABLE scim_tokens (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        hash         TEXT NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        created_by   TEXT NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
      ) STRICT;`,
    postgres: `
      -- What a SCIM client calls the person or group on its side (RFC 7643 §3.1 externalId).
      ALTER TABLE users ADD COLUMN external_id TEXT;
      ALTER TABLE groups ADD COLUMN external_id TEXT;
      -- Bearer tokens SCIM clients present; only the SHA-256 of each is kept.
      CREATE TABLE scim_tokens (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        hash         TEXT NOT NULL UNIQUE,
        created_at   BIGINT NOT NULL,
        created_by   TEXT NOT NULL,
        last_used_at BIGINT,
        revoked_at   BIGINT
      );`,
  },
  {
    version: 10,
    name: 'audit in postgres',
    // The SQLite audit chain has a file of its own (audit.db: batch commits with synchronous
    // FULL never wait on the store's writes); nothing changes in keygate.db.
    sqlite: `SELECT 1;`,
    postgres: `
      -- One hash chain for every replica (src/audit/pg-chain.ts): a batch is appended under a
      -- transaction-level advisory lock, after reading the head in the same transaction.
      CREATE TABLE audit_records (
        seq      BIGINT PRIMARY KEY,
        at       BIGINT NOT NULL,
        kind     TEXT NOT NULL,
        actor_id TEXT COLLATE "C",
        action   TEXT,
        decision TEXT,
        body     TEXT NOT NULL,   -- the record's canonical JSON (all but seq, prevHash and hash)
        hash     TEXT NOT NULL    -- SHA-256(previous hash, seq, body)
      );
      CREATE INDEX audit_records_actor ON audit_records (actor_id, seq) WHERE actor_id IS NOT NULL;
      -- Time → seq, as in the SQLite chain: the time span of each block of 1,024 records.
      CREATE TABLE audit_time_blocks (
        block  BIGINT PRIMARY KEY,
        min_at BIGINT NOT NULL,
        max_at BIGINT NOT NULL
      );
      -- Signed checkpoints: a JWS (ES256) over {seq, hash, at} of the chain head.
      CREATE TABLE audit_checkpoints (
        seq  BIGINT PRIMARY KEY,
        hash TEXT NOT NULL,
        at   BIGINT NOT NULL,
        kid  TEXT NOT NULL,
        jws  TEXT NOT NULL
      );`,
  },
  {
    version: 11,
    name: 'agents',
    sqlite: `
      -- A person's delegation to an agent (a service principal): which actions, until when.
      CREATE TABLE agent_grants (
        id         TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        agent_id   TEXT NOT NULL,
        actions    TEXT NOT NULL,   -- JSON array of actions
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
      ) STRICT;
      CREATE INDEX agent_grants_user ON agent_grants (user_id);
      -- One exact request an agent asked to make, waiting for (or given) its person's tap.
      CREATE TABLE approvals (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        agent_id      TEXT NOT NULL,
        grant_id      TEXT NOT NULL,
        upstream      TEXT NOT NULL,
        method        TEXT NOT NULL,
        path          TEXT NOT NULL,
        query         TEXT NOT NULL,
        action        TEXT NOT NULL,
        resource      TEXT NOT NULL,
        content_type  TEXT,
        body          BLOB NOT NULL,
        body_sha256   TEXT NOT NULL,
        digest        TEXT NOT NULL,
        status        TEXT NOT NULL,   -- pending | approved | denied | used
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        decided_at    INTEGER,
        credential_id TEXT,
        event_id      TEXT,
        used_at       INTEGER
      ) STRICT;
      CREATE INDEX approvals_user ON approvals (user_id, created_at);`,
    postgres: `
      -- A person's delegation to an agent (a service principal): which actions, until when.
      CREATE TABLE agent_grants (
        id         TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        agent_id   TEXT NOT NULL,
        actions    TEXT NOT NULL,   -- JSON array of actions
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE INDEX agent_grants_user ON agent_grants (user_id);
      -- One exact request an agent asked to make, waiting for (or given) its person's tap.
      CREATE TABLE approvals (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        agent_id      TEXT NOT NULL,
        grant_id      TEXT NOT NULL,
        upstream      TEXT NOT NULL,
        method        TEXT NOT NULL,
        path          TEXT NOT NULL,
        query         TEXT NOT NULL,
        action        TEXT NOT NULL,
        resource      TEXT NOT NULL,
        content_type  TEXT,
        body          BYTEA NOT NULL,
        body_sha256   TEXT NOT NULL,
        digest        TEXT NOT NULL,
        status        TEXT NOT NULL,   -- pending | approved | denied | used
        created_at    BIGINT NOT NULL,
        expires_at    BIGINT NOT NULL,
        decided_at    BIGINT,
        credential_id TEXT,
        event_id      TEXT,
        used_at       BIGINT
      );
      CREATE INDEX approvals_user ON approvals (user_id, created_at);`,
  },
];
