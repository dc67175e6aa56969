import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { storeContract } from '../store.contract.js';
import { SqliteStore } from './index.js';

describe('SqliteStore', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  storeContract({
    open: async () => new SqliteStore({ path: ':memory:' }),
    // Stores sharing a database need a file.
    openShared: async (n) => {
      const dir = mkdtempSync(join(tmpdir(), 'kg-store-'));
      dirs.push(dir);
      return Array.from({ length: n }, () => new SqliteStore({ path: join(dir, 'keygate.db') }));
    },
  });
});
