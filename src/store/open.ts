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
  if (s.driver === 'postgres') {
    // The config validated that exactly one of url and urlEnv is set, and the runtime check that the variable is.
    const url = s.url ?? env[s.urlEnv as string] ?? '';
    return new PostgresStore({ connectionString: url, max: s.poolSize });
  }
  return new SqliteStore({ path: s.path ?? `${config.dataDir}/keygate.db` });
}
