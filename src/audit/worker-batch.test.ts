import { describe, expect, it } from 'vitest';
import type { QueuedRecord } from './sqlite-chain.js';
import { packBatch, unpackBatch } from './worker-batch.js';

const rec = (over: Partial<QueuedRecord>): QueuedRecord => ({
  body: '{"a":1}',
  at: 1_800_000_000_000,
  kind: 'http.request',
  actor: 'usr_1',
  action: 'serving:read',
  decision: 'allow',
  ...over,
});

describe('a batch on its way to the writer thread', () => {
  it('comes back field for field: nulls stay null, empty strings stay empty, any text survives', () => {
    const records = [
      rec({}),
      rec({ actor: null, action: null, decision: null }),
      rec({ actor: '', action: '', body: '' }),
      rec({ actor: 'usr_é', body: '{"p":"/x/😀/\\u0001","q":"\\n"}', at: 0 }),
      rec({ kind: 'auth.login', action: 'a\u001fb\u001ec\nd', decision: 'deny', at: 1.5 }),
    ];
    const packed = packBatch(records);
    expect(packed.at.length).toBe(records.length);
    expect(unpackBatch(packed)).toEqual(records);
    expect(unpackBatch(packBatch([]))).toEqual([]);
  });

  it('a batch whose parts disagree is refused, not half-read', () => {
    const packed = packBatch([rec({}), rec({})]);
    expect(() => unpackBatch({ ...packed, text: `${packed.text}x` })).toThrow('text does not match');
    expect(() => unpackBatch({ ...packed, lengths: packed.lengths.slice(0, 5) })).toThrow('lengths do not match');
  });
});
