/**
 * The request thread's part of an audit record: `queued()` (encode the entry to its canonical
 * JSON, give it an id, flatten it) on entries shaped like the gateway's `http.request` records,
 * in one process, interleaved rounds:
 *
 *   shared  — actor, decision and upstream identity are the shared frozen objects the gateway
 *             hands over (a session's actor, a cached decision, a credential's identity);
 *   fresh   — the same entries with those three built anew (unfrozen) for every record;
 *   generic — the baseline: `canonicalJson({ ...entry, id })`, the generic encoder the
 *             per-request one must equal.
 *
 *   npx tsx bench/audit/encode.ts [--records 200000] [--rounds 5] [--root <checkout>]
 *
 * --root runs another checkout's encoder (e.g. a `git worktree` of an older commit) for a
 * before/after comparison.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type * as Record from '../../src/audit/record.js';
import type * as Chain from '../../src/audit/sqlite-chain.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '5' },
    root: { type: 'string', default: fileURLToPath(new URL('../..', import.meta.url)) },
  },
});
const N = Number(args.records);
const { canonicalJson } = (await import(join(args.root, 'src/audit/record.ts'))) as typeof Record;
const { queued } = (await import(join(args.root, 'src/audit/sqlite-chain.ts'))) as typeof Chain;

type Entry = Parameters<typeof queued>[0];
const actorOf = () => ({
  type: 'user' as const,
  id: 'usr_01J9ZQ3K',
  email: 'ana@example.com',
  authEventId: 'evt_01J9ZQ4M',
  method: 'token',
  tokenId: 'tok_01J9ZQ5P',
  uv: true,
  authTime: 1_800_000_000_000,
  deviceBound: false,
});
const decisionOf = () => ({ effect: 'allow' as const, reasons: ['role:ml-engineer'] });
const identityOf = () => ({ type: 'federated' as const, subject: 'ana@example.com' });
const deepFreeze = <T extends object>(o: T): T => {
  for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) Object.freeze(v);
  return Object.freeze(o);
};
const shared = { actor: deepFreeze(actorOf()), decision: deepFreeze(decisionOf()), identity: deepFreeze(identityOf()) };

function entry(i: number, fresh: boolean): Entry {
  return {
    kind: 'http.request',
    at: 1_800_000_000_000 + i,
    actor: fresh ? actorOf() : shared.actor,
    request: {
      method: 'POST',
      path: '/serving-endpoints/churn/invocations',
      action: 'serving:invoke',
      resource: 'Endpoint::"churn"',
      ip: `10.0.${(i >> 8) & 255}.${i & 255}`,
      userAgent: 'databricks-sdk-js/0.17.0',
      requestId: randomUUID(),
    },
    decision: fresh ? decisionOf() : shared.decision,
    upstream: {
      name: 'workspace',
      status: 200,
      latencyMs: (i % 997) / 10,
      bytes: 1_024 + (i % 4_096),
      identity: fresh ? identityOf() : shared.identity,
    },
    status: 200,
  };
}

let sink = 0;
/**
 * µs per record of `encode`: each entry is built just before it is encoded, as on the request
 * thread, and only the encoding is timed (the clock read is in every variant alike).
 */
function measure(encode: (e: Entry) => string, fresh: boolean): number {
  let ms = 0;
  for (let i = 0; i < N; i++) {
    const e = entry(i, fresh);
    const t = performance.now();
    sink += encode(e).length;
    ms += performance.now() - t;
  }
  return (ms * 1000) / N;
}
const variants: [string, () => number][] = [
  ['shared', () => measure((e) => queued(e).body, false)],
  ['fresh', () => measure((e) => queued(e).body, true)],
  [
    'generic',
    () =>
      measure((e) => {
        const s = canonicalJson({ ...e, id: randomUUID() });
        s.charCodeAt(0);
        return s;
      }, false),
  ],
];
const rows = new Map<string, number[]>(variants.map(([n]) => [n, []]));
// A warm-up round, then interleaved rounds.
for (const [, run] of variants) run();
for (let r = 0; r < Number(args.rounds); r++) for (const [n, run] of variants) rows.get(n)?.push(run());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const generic = median(rows.get('generic') as number[]);
console.log(`bench/audit/encode — ${args.root}, ${N} records × ${args.rounds} rounds, median µs per record\n`);
console.log('| variant | µs per record | × generic |\n|---|---|---|');
for (const [n, xs] of rows) console.log(`| ${n} | ${median(xs).toFixed(2)} | ${(median(xs) / generic).toFixed(2)} |`);
if (sink === 0) console.log('(nothing encoded)');
