/**
 * The audit writer thread: owns the audit database connection, chains and commits batches
 * (synchronous FULL) and signs checkpoints, so that no fsync ever runs on the request thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { JWK } from 'jose';
import { openAuditDb, type QueuedRecord, SqliteChain, signerFor } from './sqlite-chain.js';

export interface WorkerInit {
  path: string;
  every: number;
  everyMs: number;
  key: { kid: string; jwk: JWK } | null;
  busyTimeoutMs: number;
}

export type WorkerRequest = { type: 'batch'; id: number; records: QueuedRecord[] } | { type: 'close' };
export type WorkerReply =
  | { type: 'ready'; seq: number; hash: string }
  | { type: 'committed'; id: number; through: number }
  | { type: 'failed'; id: number; error: string }
  | { type: 'closed' };

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('audit worker started outside a worker thread');

const db = openAuditDb(init.path, init.busyTimeoutMs);
const chain = new SqliteChain(db, { every: init.every, everyMs: init.everyMs, sign: await signerFor(init.key) });
const reply = (m: WorkerReply) => port.postMessage(m);
reply({ type: 'ready', seq: chain.current.seq, hash: chain.current.hash });

// One batch at a time: the main thread sends the next only after this one is answered.
// A quiet log still gets its actor index within the policy's lag.
const indexTimer = setInterval(() => {
  try {
    chain.indexIfDue();
  } catch {
    // Busy or failing: the next commit or tick tries again; queries scan what is not indexed.
  }
}, 1_000);
indexTimer.unref();

port.on('message', (m: WorkerRequest) => {
  if (m.type === 'close') {
    clearInterval(indexTimer);
    db.close();
    reply({ type: 'closed' });
    return;
  }
  chain.append(m.records).then(
    (through) => reply({ type: 'committed', id: m.id, through }),
    (e: unknown) => reply({ type: 'failed', id: m.id, error: e instanceof Error ? e.message : String(e) }),
  );
});
