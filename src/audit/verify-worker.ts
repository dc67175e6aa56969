/**
 * `verifyChain` on its own thread, for the admin API's "verify chain": walking a long log takes
 * seconds, which must not block the request thread. Reads the file through its own read-only
 * connection and posts the result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { JWK } from 'jose';
import { verifyChain } from './verify.js';

const { path, keys } = workerData as { path: string; keys: JWK[] };
const db = new Database(path, { readonly: true, fileMustExist: true });
try {
  parentPort?.postMessage({ ok: true, result: await verifyChain(db, { keys }) });
} catch (e) {
  parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) });
} finally {
  db.close();
}
