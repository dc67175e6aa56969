/**
 * The store the configuration names: the embedded SQLite file (one process), or PostgreSQL
 * (several replicas share it). Every command that touches state opens it here.
 */
import type { Config } from '../config/schema.js';
import { PostgresStore } from './postgres/index.js';
import { SqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

export function openStore(config: Config, env: NodeJS.ProcessEnv): Store {
  const s = config.store;
  const url = postgresUrl(config, env);
  if (url !== undefined) return new PostgresStore({ connectionString: url, max: s.poolSize });
  return new SqliteStore({ path: s.path ?? `${config.dataDir}/keygate.db` });
}

/** The PostgreSQL connection string, when the store is PostgreSQL (the audit chain is then there too). */
export function postgresUrl(config: Config, env: NodeJS.ProcessEnv): string | undefined {
  const s = config.store;
  if (s.driver !== 'postgres') return undefined;
  // The config validated that exactly one of url and urlEnv is set, and the runtime check that the variable is.
  return s.url ?? env[s.urlEnv as string] ?? '';
}
