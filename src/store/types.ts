/**
 * The Store is the floor of the house: it imports nothing from the services above it.
 * One interface, an SQLite implementation (embedded default) and, later, PostgreSQL; both
 * must pass the same suite (src/store/store.contract.ts).
 */

export interface SigningKeyRecord {
  kid: string;
  alg: 'ES256';
  /** What the key signs: identity assertions to upstreams, tokens, audit checkpoints. */
  use: 'assertion' | 'token' | 'audit';
  publicJwk: string;
  privateJwk: string;
  createdAt: number;
  /** After this time the key no longer signs; it is still published until its tokens expire. */
  retiresAt: number | null;
}

export interface MigrationStatus {
  /** Versions applied by this call. */
  applied: number[];
  /** Highest version now in the database. */
  current: number;
}

export interface Store {
  readonly driver: 'sqlite';
  /** Apply pending migrations, each in its own transaction. */
  migrate(): Promise<MigrationStatus>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;

  getMeta(key: string): Promise<string | null>;
  /** Sets `key` only if it is not set yet; returns the value now stored (race-free across replicas). */
  initMeta(key: string, value: string): Promise<string>;

  insertSigningKey(k: SigningKeyRecord): Promise<void>;
  listSigningKeys(use: SigningKeyRecord['use']): Promise<SigningKeyRecord[]>;
}
