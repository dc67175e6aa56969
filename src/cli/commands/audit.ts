/**
 * `keygate audit verify`: walk the local audit chain and its signed checkpoints; exit 0 when
 * intact, 1 with the first broken or missing record otherwise.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { JWK } from 'jose';
import { openAuditDb } from '../../audit/sqlite-chain.js';
import { verifyChain } from '../../audit/verify.js';
import { SqliteStore } from '../../store/sqlite/index.js';
import { EXIT, type Output } from '../output.js';
import { loadOrReport } from './serve.js';

export async function auditVerify(
  o: { config?: string; file?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const loaded = loadOrReport(o.config, out, env);
  if (!loaded) return EXIT.FAILED;
  const { config } = loaded;
  const storePath = config.store.path ?? `${config.dataDir}/keygate.db`;
  const path = o.file ?? config.audit.path ?? `${dirname(storePath)}/audit.db`;
  if (!existsSync(path)) {
    out.err(`keygate: no audit log at ${path}`);
    return EXIT.FAILED;
  }
  // The checkpoint keys are the store's audit keys (all of them, retired ones too).
  const store = new SqliteStore({ path: storePath });
  let keys: JWK[];
  try {
    await store.migrate();
    keys = (await store.listSigningKeys('audit')).map((k) => JSON.parse(k.publicJwk) as JWK);
  } finally {
    await store.close();
  }
  const db = openAuditDb(path);
  try {
    const started = performance.now();
    const r = await verifyChain(db, { keys });
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    if (!r.ok) {
      out.out(`BROKEN at record ${r.problem?.seq}: ${r.problem?.what}`);
      out.err(`Checked ${r.records} records before it (${secs} s). Everything from there on cannot be trusted.`);
      return EXIT.FAILED;
    }
    out.out(
      `ok: ${r.records} records (${r.firstSeq ?? '-'}–${r.lastSeq ?? '-'}), ${r.checkpoints} signed checkpoints, in ${secs} s`,
    );
    return EXIT.OK;
  } finally {
    db.close();
  }
}
