/**
 * Versioned migrations. Each runs in one transaction together with the row that records it,
 * so a migration that fails half-way leaves the database exactly at the previous version.
 * Never edit a migration that has shipped; add the next one.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'meta',
    sqlite: `
      CREATE TABLE keygate_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;`,
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
  },
];
