/**
 * The audit writer thread: owns the audit database connection, chains and commits batches
 * (synchronous FULL) and signs checkpoints, so that no fsync ever runs on the request thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { linesAfter } from './query.js';
import { FileSink, writeStdout } from './sinks.js';
import { openAuditDb, SqliteChain, signerFor } from './sqlite-chain.js';
import { unpackBatch, type WorkerInit, type WorkerReply, type WorkerRequest } from './worker-batch.js';

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

// A quiet log still gets its actor index within the policy's lag.
const indexTimer = setInterval(() => {
  try {
    chain.indexIfDue();
  } catch {
    // Busy or failing: the next commit or tick tries again; queries scan what is not indexed.
  }
}, 1_000);
indexTimer.unref();

let tail: Promise<void> = Promise.resolve();
let refusing = false;
port.on('message', (m: WorkerRequest) => {
  if (m.type === 'close') {
    // After the batches already sent.
    tail = tail.then(() => {
      clearInterval(indexTimer);
      if (pruneTimer !== undefined) clearInterval(pruneTimer);
      file?.close();
      db.close();
      reply({ type: 'closed' });
    });
    return;
  }
  // Batches are committed one after the other in the order they arrive (the main thread may
  // send a second while one is written). After a failed batch, every batch already sent is
  // refused unwritten, so the chain never holds a later batch without an earlier one; the main
  // thread then sends them all again, the first marked `resume`.
  const id = m.id;
  const records = unpackBatch(m);
  const resume = m.resume;
  tail = tail.then(async () => {
    if (resume) refusing = false;
    if (refusing) {
      reply({ type: 'failed', id, error: 'an earlier batch failed' });
      return;
    }
    try {
      reply({ type: 'committed', id, through: await chain.append(records) });
    } catch (e) {
      refusing = true;
      reply({ type: 'failed', id, error: e instanceof Error ? e.message : String(e) });
    }
  });
});
