/**
 * The messages between the request thread and the audit writer thread (worker.ts), and how a
 * batch travels: not as one object per record (structured cloning thousands of small objects
 * costs both threads more than the records' encoding), but as one string holding every field
 * of every record back to back, their lengths, and their times — two of the three transferred,
 * not copied.
 */
import type { JWK } from 'jose';
import type { SinkOptions } from './sinks.js';
import type { QueuedRecord } from './sqlite-chain.js';

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

/** A batch on the wire: see packBatch. */
export interface PackedBatch {
  text: string;
  lengths: Int32Array<ArrayBuffer>;
  at: Float64Array<ArrayBuffer>;
}

export type WorkerRequest = ({ type: 'batch'; id: number; resume: boolean } & PackedBatch) | { type: 'close' };
export type WorkerReply =
  | { type: 'ready'; seq: number; hash: string }
  | { type: 'log'; level: 'info' | 'warn'; msg: string; detail: string }
  | { type: 'committed'; id: number; through: number }
  | { type: 'failed'; id: number; error: string }
  | { type: 'closed' };

/** Per record: kind, actor, action, decision, body; −1 stands for null. */
const FIELDS = 5;

export function packBatch(records: readonly QueuedRecord[]): PackedBatch {
  const lengths = new Int32Array(records.length * FIELDS);
  const at = new Float64Array(records.length);
  let text = '';
  let j = 0;
  const field = (f: string | null, k: number): number => {
    if (f === null) lengths[k] = -1;
    else {
      text += f;
      lengths[k] = f.length;
    }
    return k + 1;
  };
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as QueuedRecord;
    at[i] = r.at;
    text += r.kind;
    lengths[j++] = r.kind.length;
    j = field(r.actor, j);
    j = field(r.action, j);
    j = field(r.decision, j);
    text += r.body;
    lengths[j++] = r.body.length;
  }
  return { text, lengths, at };
}

export function unpackBatch(b: PackedBatch): QueuedRecord[] {
  const n = b.at.length;
  if (b.lengths.length !== n * FIELDS) throw new Error('audit batch: lengths do not match the records');
  const out: QueuedRecord[] = new Array(n);
  let pos = 0;
  let j = 0;
  const next = (): string | null => {
    const len = b.lengths[j++] as number;
    if (len < 0) return null;
    const s = b.text.slice(pos, pos + len);
    pos += len;
    return s;
  };
  for (let i = 0; i < n; i++) {
    const kind = next() as string;
    const actor = next();
    const action = next();
    const decision = next();
    const body = next() as string;
    out[i] = { at: b.at[i] as number, kind, actor, action, decision, body };
  }
  if (pos !== b.text.length) throw new Error('audit batch: text does not match the lengths');
  return out;
}
