/**
 * The audit writer thread: owns the audit database connection, chains and commits batches
 * (synchronous FULL) and signs checkpoints, so that no fsync ever runs on the request thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { JWK } from 'jose';
import { linesAfter } from './query.js';
import { FileSink, type SinkOptions, writeStdout } from './sinks.js';
import { openAuditDb, type QueuedRecord, SqliteChain, signerFor } from './sqlite-chain.js';

export interface WorkerInit {
  path: string;
  every: number;
  everyMs: number;
  key: { kid: string; jwk: JWK } | null;
  busyTimeoutMs: number;
  /** Keep records this long (null: forever); pruning runs every `pruneEveryMs`. */
  retentionMs: number | null;
  pruneEveryMs: number;
  sinks: SinkOptions;
}

export type WorkerRequest = { type: 'batch'; id: number; records: QueuedRecord[] } | { type: 'close' };
export type WorkerReply =
  | { type: 'ready'; seq: number; hash: string }
  | { type: 'log'; level: 'info' | 'warn'; msg: string; detail: string }
  | { type: 'committed'; id: number; through: number }
  | { type: 'failed'; id: number; error: string }
  | { type: 'closed' };

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('audit worker started outside a worker thread');

const db = openAuditDb(init.path, init.busyTimeoutMs);
const chain = new SqliteChain(db, { every: init.every, everyMs: init.everyMs, sign: await signerFor(init.key) });
const reply = (m: WorkerReply) => port.postMessage(m);
const warn = (msg: string, e: unknown) =>
  reply({ type: 'log', level: 'warn', msg, detail: e instanceof Error ? e.message : String(e) });
chain.onError = (e) => warn('audit index or sink write failed (the records are committed)', e);

// Sinks get records once committed. A file that already holds records resumes after its last
// one (records committed while the process died reach it now); a new file starts at the head.
const file = init.sinks.file === undefined ? undefined : new FileSink(init.sinks.file);
if (file !== undefined && file.resumeAfter > 0 && file.resumeAfter < chain.current.seq) {
  let batch: string[] = [];
  for (const line of linesAfter(db, file.resumeAfter)) {
    batch.push(line);
    if (batch.length >= 1000) {
      file.write(batch);
      batch = [];
    }
  }
  file.write(batch);
}
if (file !== undefined || init.sinks.stdout) {
  chain.onCommit = (lines) => {
    if (file !== undefined) file.write(lines);
    if (init.sinks.stdout) writeStdout(lines);
  };
}

reply({ type: 'ready', seq: chain.current.seq, hash: chain.current.hash });

// Retention: shortly after start, then on the interval.
let pruneTimer: NodeJS.Timeout | undefined;
if (init.retentionMs !== null) {
  const retention = init.retentionMs;
  const prune = () => {
    chain.prune(Date.now() - retention).then(
      (r) => {
        if (r !== null)
          reply({
            type: 'log',
            level: 'info',
            msg: 'audit records pruned',
            detail: `through ${r.through} (${r.removed} records)`,
          });
      },
      (e: unknown) => warn('audit pruning failed (retried at the next interval)', e),
    );
  };
  setTimeout(prune, 10_000).unref();
  pruneTimer = setInterval(prune, init.pruneEveryMs);
  pruneTimer.unref();
}

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
    if (pruneTimer !== undefined) clearInterval(pruneTimer);
    file?.close();
    db.close();
    reply({ type: 'closed' });
    return;
  }
  chain.append(m.records).then(
    (through) => reply({ type: 'committed', id: m.id, through }),
    (e: unknown) => reply({ type: 'failed', id: m.id, error: e instanceof Error ? e.message : String(e) }),
  );
});
