/**
 * The audit chain in PostgreSQL: one chain for every replica on the database.
 *
 * Appending a batch is one transaction: take a transaction-level advisory lock (the chain's
 * one writer at a time, across replicas), read the head (seq, hash) and the last checkpoint in
 * that same transaction, chain the batch on it, insert it, commit. The lock is released by the
 * commit or the rollback, so a replica that dies mid-batch leaves neither a lock nor half a
 * batch: the next writer chains on the last committed record. Replicas interleave whole
 * batches; sequence numbers stay contiguous and the chain verifies as one.
 *
 * The lock is held for four round trips (lock, head, insert, commit); a replica's writer sends
 * one batch at a time, so a batch holds what arrived while the previous one was written.
 *
 * Reading mirrors the SQLite chain (query.ts, stats.ts): the same cursor, the same time blocks
 * turning a time range into a seq range, the same bound on the work of one page.
 */
import pg from 'pg';
import { types } from '../store/postgres/index.js';
import { type AuditFilter, type AuditPage, decodeCursor, encodeCursor } from './query.js';
import { chainStep, GENESIS_HASH, recordLine } from './record.js';
import { BLOCK, type CheckpointRow, type CheckpointSigner, type QueuedRecord } from './sqlite-chain.js';
import { type AuditStats, WINDOWS } from './stats.js';
import { type ChainSource, type Row, VERIFY_PAGE } from './verify.js';

/** Names "the Keygate audit chain" among advisory locks (the bytes of 'kgaudt'). */
export const AUDIT_LOCK = 0x6b6761756474;

const HEAD = `SELECT (SELECT seq FROM audit_records ORDER BY seq DESC LIMIT 1) AS seq,
                     (SELECT hash FROM audit_records ORDER BY seq DESC LIMIT 1) AS hash,
                     (SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1) AS cp_seq,
                     (SELECT at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1) AS cp_at`;

// Records, the time span of each block they fall in, and the checkpoint (when one is due), in
// one statement: arrays in, unnest() into rows.
const INSERT = `
  WITH r AS (
    INSERT INTO audit_records (seq, at, kind, actor_id, action, decision, body, hash)
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
  ), b AS (
    INSERT INTO audit_time_blocks (block, min_at, max_at)
    SELECT * FROM unnest($9::bigint[], $10::bigint[], $11::bigint[])
    ON CONFLICT (block) DO UPDATE
      SET min_at = least(audit_time_blocks.min_at, excluded.min_at),
          max_at = greatest(audit_time_blocks.max_at, excluded.max_at)
  )
  INSERT INTO audit_checkpoints (seq, hash, at, kid, jws)
  SELECT $12::bigint, $13::text, $14::bigint, $15::text, $16::text WHERE $12::bigint IS NOT NULL`;

/** A record with the hash before it: the previous record's, the checkpoint anchoring a pruned start, or genesis. */
const WITH_PREV = `r.seq, r.body, r.hash,
  coalesce((SELECT p.hash FROM audit_records p WHERE p.seq = r.seq - 1),
           (SELECT c.hash FROM audit_checkpoints c WHERE c.seq = r.seq - 1),
           CASE WHEN r.seq = 1 THEN '${GENESIS_HASH}' ELSE '' END) AS prev`;

interface LineRow {
  seq: number;
  body: string;
  hash: string;
  prev: string;
}
const line = (r: LineRow) => recordLine(r.seq, r.prev, r.hash, r.body);

/**
 * The WHERE clauses of a filtered read: the given ones, then one per filter that is set, each
 * `?` numbered as a parameter in order ($1, $2, …).
 */
function filterClauses(f: AuditFilter, first: [sql: string, value: unknown][]): { where: string[]; values: unknown[] } {
  const clauses: [string, unknown][] = [...first];
  if (f.actor !== undefined) clauses.push(['r.actor_id = ?', f.actor]);
  if (f.kind !== undefined) clauses.push(['r.kind = ?', f.kind]);
  if (f.action !== undefined) clauses.push(['r.action = ?', f.action]);
  if (f.decision !== undefined) clauses.push(['r.decision = ?', f.decision]);
  if (f.since !== undefined) clauses.push(['r.at >= ?', f.since]);
  if (f.until !== undefined) clauses.push(['r.at < ?', f.until]);
  return {
    where: clauses.map(([sql], i) => sql.replace('?', `$${i + 1}`)),
    values: clauses.map(([, v]) => v),
  };
}

export interface PgChainOptions {
  connectionString: string;
  checkpoint: { every: number; everyMs: number; sign: CheckpointSigner | undefined };
  now?: () => number;
}

export class PgChain {
  private readonly pool: pg.Pool;
  private readonly checkpoint: PgChainOptions['checkpoint'];
  private readonly now: () => number;
  /** Committed records as JSON lines, for this replica's sinks. */
  onCommit: ((lines: string[]) => void) | undefined;
  onError: (e: unknown) => void = () => {};

  constructor(o: PgChainOptions) {
    // Its own small pool: the audit writer never waits behind the store's queries, nor they behind it.
    this.pool = new pg.Pool({ connectionString: o.connectionString, max: 3, types, connectionTimeoutMillis: 5_000 });
    // A connection that breaks while idle, or while checked out between queries (the query then
    // fails, and is handled there), must not end the process.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (client) => client.on('error', () => undefined));
    this.checkpoint = o.checkpoint;
    this.now = o.now ?? Date.now;
  }

  /** The last committed seq (0 for an empty chain). */
  async head(): Promise<number> {
    const r = await this.pool.query<{ s: number | null }>('SELECT max(seq) AS s FROM audit_records');
    return r.rows[0]?.s ?? 0;
  }

  /**
   * Chain and commit a batch in one transaction (with a checkpoint when one is due). Returns the
   * last seq written. On failure the transaction is rolled back and nothing is written, so the
   * batch can be retried — except when the connection is lost during COMMIT itself: PostgreSQL
   * may then have committed, and the retry writes the batch a second time (each record keeps
   * its id, so the copy is recognisable; the chain stays whole).
   */
  async append(records: readonly QueuedRecord[]): Promise<number> {
    if (records.length === 0) return this.head();
    const c = await this.pool.connect();
    let broken: Error | undefined;
    try {
      // 1. One writer at a time across replicas, until this transaction ends.
      await c.query(`BEGIN; SELECT pg_advisory_xact_lock(${AUDIT_LOCK})`);
      // 2. The head as committed by whoever held the lock last (read after taking it).
      const h = (await c.query(HEAD)).rows[0] as {
        seq: number | null;
        hash: string | null;
        cp_seq: number | null;
        cp_at: number | null;
      };
      // 3. Chain the batch on it: hash_n = SHA-256(hash_{n-1}, seq_n, body_n).
      let seq = h.seq ?? 0;
      let prev = h.hash ?? GENESIS_HASH;
      const n = records.length;
      const cols: unknown[][] = Array.from({ length: 8 }, () => new Array(n));
      const blocks: [number[], number[], number[]] = [[], [], []];
      const lines: string[] | undefined = this.onCommit === undefined ? undefined : [];
      for (let i = 0; i < n; i++) {
        const r = records[i] as QueuedRecord;
        seq++;
        const hash = chainStep(prev, seq, r.body);
        if (lines !== undefined) lines.push(recordLine(seq, prev, hash, r.body));
        prev = hash;
        const row = [seq, r.at, r.kind, r.actor, r.action, r.decision, r.body, hash];
        for (let k = 0; k < 8; k++) (cols[k] as unknown[])[i] = row[k];
        const block = Math.floor(seq / BLOCK);
        const last = blocks[0].length - 1;
        if (last < 0 || blocks[0][last] !== block) {
          blocks[0].push(block);
          blocks[1].push(r.at);
          blocks[2].push(r.at);
        } else {
          blocks[1][last] = Math.min(blocks[1][last] as number, r.at);
          blocks[2][last] = Math.max(blocks[2][last] as number, r.at);
        }
      }
      // 4. A signed checkpoint over the new head every `every` records or `everyMs`, counted
      //    from the last one in the database (whichever replica wrote it).
      const now = this.now();
      const sign = this.checkpoint.sign;
      const due =
        sign !== undefined &&
        (h.cp_seq === null ||
          seq - h.cp_seq >= this.checkpoint.every ||
          now - (h.cp_at ?? 0) >= this.checkpoint.everyMs);
      const cp = due ? { seq, hash: prev, at: now, ...(await sign({ seq, hash: prev, at: now })) } : undefined;
      await c.query(INSERT, [
        ...cols,
        ...blocks,
        cp?.seq ?? null,
        cp?.hash ?? null,
        cp?.at ?? null,
        cp?.kid ?? null,
        cp?.jws ?? null,
      ]);
      // 5. Durable (synchronous_commit on, PostgreSQL's default) and visible to every replica.
      await c.query('COMMIT');
      if (lines !== undefined) {
        try {
          this.onCommit?.(lines);
        } catch (e) {
          this.onError(e);
        }
      }
      return seq;
    } catch (e) {
      broken = e as Error;
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      // A connection that failed mid-transaction is closed, not reused.
      c.release(broken);
    }
  }

  /**
   * Retention, as the SQLite chain does it: remove records stamped before `cutoff` up to the
   * newest checkpoint written before it (which stays and anchors the new start), then record
   * `audit.pruned`. One replica at a time (a session advisory lock tried, not waited for).
   */
  async prune(
    cutoff: number,
    record: (detail: { through: number; removed: number; cutoff: number }) => QueuedRecord,
    slice = 20_000,
  ): Promise<{ through: number; removed: number } | null> {
    const c = await this.pool.connect();
    try {
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [AUDIT_LOCK + 1]);
      if (got.rows[0]?.ok !== true) return null;
      try {
        const a = await c.query<{ anchor: number | null; first: number | null }>(
          `SELECT (SELECT seq FROM audit_checkpoints
                    WHERE at < $1 AND seq < (SELECT max(seq) FROM audit_records) ORDER BY seq DESC LIMIT 1) AS anchor,
                  (SELECT min(seq) FROM audit_records) AS first`,
          [cutoff],
        );
        const { anchor, first } = a.rows[0] as { anchor: number | null; first: number | null };
        if (anchor === null || first === null || first > anchor) return null;
        let removed = 0;
        for (let lo = first; lo <= anchor; lo += slice) {
          const hi = Math.min(anchor, lo + slice - 1);
          await c.query('BEGIN');
          removed += (await c.query('DELETE FROM audit_records WHERE seq BETWEEN $1 AND $2', [lo, hi])).rowCount ?? 0;
          await c.query('DELETE FROM audit_time_blocks WHERE block < $1', [Math.floor((hi + 1) / BLOCK)]);
          await c.query('DELETE FROM audit_checkpoints WHERE seq < $1', [anchor]);
          await c.query('COMMIT');
        }
        await this.append([record({ through: anchor, removed, cutoff })]);
        return { through: anchor, removed };
      } finally {
        await c.query('SELECT pg_advisory_unlock($1)', [AUDIT_LOCK + 1]);
      }
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  /** The chain for `verifySource`: checkpoints, then records in keyset pages. */
  source(): ChainSource {
    const pool = this.pool;
    return {
      checkpoints: async () =>
        (await pool.query<CheckpointRow>('SELECT seq, hash, at, kid, jws FROM audit_checkpoints ORDER BY seq')).rows,
      async *pages() {
        for (let after = -1; ; ) {
          const rows = (
            await pool.query<Row>(
              'SELECT seq, at, kind, actor_id, action, decision, body, hash FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2',
              [after, VERIFY_PAGE],
            )
          ).rows;
          if (rows.length === 0) return;
          yield rows;
          after = (rows.at(-1) as Row).seq;
        }
      },
    };
  }

  /** The seq range (lo, hi] that can hold records with since ≤ at < until (see query.ts). */
  private async seqRange(since: number | undefined, until: number | undefined): Promise<[number, number]> {
    const r = (
      await this.pool.query<{ first: number | null; last: number | null }>(
        `SELECT (SELECT min(block) FROM audit_time_blocks WHERE max_at >= $1) AS first,
                (SELECT max(block) FROM audit_time_blocks WHERE min_at < $2) AS last`,
        [since ?? 0, until ?? Number.MAX_SAFE_INTEGER],
      )
    ).rows[0] as { first: number | null; last: number | null };
    if ((since !== undefined && r.first === null) || (until !== undefined && r.last === null)) return [0, 0];
    const lo = since === undefined || r.first === null ? 0 : r.first * BLOCK - 1;
    const hi = until === undefined || r.last === null ? Number.MAX_SAFE_INTEGER : (r.last + 1) * BLOCK - 1;
    return [Math.max(0, lo), hi];
  }

  /**
   * One page of records matching `f`, after `cursor`, in chain order. The filters run in
   * PostgreSQL over at most `maxScan` records of the seq range (an actor's through its index),
   * so a rare match costs a short page with a cursor, never a long scan.
   */
  async query(f: AuditFilter, o: { limit: number; cursor?: string; maxScan?: number }): Promise<AuditPage> {
    const maxScan = o.maxScan ?? 100_000;
    const [lo0, hi0] = await this.seqRange(f.since, f.until);
    const lo = o.cursor === undefined ? lo0 : Math.max(lo0, decodeCursor(o.cursor));
    const head = await this.head();
    const hi = Math.min(hi0, head);
    if (lo >= hi) return { lines: [], next: null };
    const windowEnd = Math.min(hi, lo + maxScan);
    const { where, values } = filterClauses(f, [
      ['r.seq > ?', lo],
      ['r.seq <= ?', windowEnd],
    ]);
    values.push(o.limit);
    const rows = (
      await this.pool.query<LineRow>(
        `SELECT ${WITH_PREV} FROM audit_records r WHERE ${where.join(' AND ')} ORDER BY r.seq LIMIT $${values.length}`,
        values,
      )
    ).rows;
    const lines = rows.map(line);
    // A full page continues after its last record; a short one after the window it examined.
    if (rows.length >= o.limit) return { lines, next: encodeCursor((rows.at(-1) as LineRow).seq) };
    return { lines, next: windowEnd < hi ? encodeCursor(windowEnd) : null };
  }

  /** Every record with since ≤ at < until, in chain order, as JSON lines. */
  async *exportRange(since?: number, until?: number): AsyncGenerator<string> {
    const [lo, hi] = await this.seqRange(since, until);
    for (let after = lo; ; ) {
      const rows = (
        await this.pool.query<LineRow & { at: number }>(
          `SELECT r.at, ${WITH_PREV} FROM audit_records r WHERE r.seq > $1 AND r.seq <= $2 ORDER BY r.seq LIMIT $3`,
          [after, hi, VERIFY_PAGE],
        )
      ).rows;
      if (rows.length === 0) return;
      for (const r of rows)
        if ((since === undefined || r.at >= since) && (until === undefined || r.at < until)) yield line(r);
      after = (rows.at(-1) as LineRow).seq;
    }
  }

  /** The last `n` records matching the column filters, oldest first; then those after `after`. */
  async latest(f: AuditFilter, n: number, after?: number): Promise<{ seq: number; line: string }[]> {
    const { where, values } = filterClauses(f, after === undefined ? [] : [['r.seq > ?', after]]);
    values.push(n);
    const order = after === undefined ? 'DESC' : 'ASC';
    const rows = (
      await this.pool.query<LineRow>(
        `SELECT ${WITH_PREV} FROM audit_records r ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
          ORDER BY r.seq ${order} LIMIT $${values.length}`,
        values,
      )
    ).rows;
    if (after === undefined) rows.reverse();
    return rows.map((r) => ({ seq: r.seq, line: line(r) }));
  }

  /** Dashboard figures over a window, as stats.ts computes them from the SQLite chain. */
  async stats(window: keyof typeof WINDOWS, now: number, maxRecords = 500_000): Promise<AuditStats> {
    const { ms, bucketMs } = WINDOWS[window];
    const to = now;
    const from = Math.floor((now - ms) / bucketMs) * bucketMs + bucketMs;
    const c = await this.pool.connect();
    try {
      // One snapshot for every figure.
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const b = (
        await c.query<{ first: number | null; head: number | null }>(
          `SELECT (SELECT min(block) FROM audit_time_blocks WHERE max_at >= $1) AS first,
                  (SELECT max(seq) FROM audit_records) AS head`,
          [from],
        )
      ).rows[0] as { first: number | null; head: number | null };
      const head = b.head ?? 0;
      const lo0 = b.first === null ? head : Math.max(0, b.first * BLOCK - 1);
      const lo = Math.max(lo0, head - maxRecords);
      const range = [lo, head, from, to];
      const where = 'seq > $1 AND seq <= $2 AND at >= $3 AND at <= $4';
      const buckets = new Map<number, AuditStats['buckets'][number]>();
      for (let t = from; t <= to; t += bucketMs) buckets.set(t, { t, allow: 0, deny: 0, step_up: 0, error: 0 });
      let requests = 0;
      for (const r of (
        await c.query<{ t: number; decision: string | null; n: number }>(
          `SELECT (at / ${bucketMs}) * ${bucketMs} AS t, decision, count(*) AS n FROM audit_records
            WHERE ${where} AND kind = 'http.request' GROUP BY t, decision`,
          range,
        )
      ).rows) {
        const bucket = buckets.get(r.t);
        // No decision: refused before policy (no or bad credentials, a malformed request): a denial.
        const d = (r.decision ?? 'deny') as 'allow' | 'deny' | 'step_up' | 'error';
        if (bucket !== undefined && d in bucket) bucket[d] += r.n;
        requests += r.n;
      }
      const list = [...buckets.values()];
      // Type and email from the principal's latest record.
      const topPrincipals = (
        await c.query<{ id: string; type: string; email: string | null; count: number }>(
          `SELECT t.id, t.count, r.body::jsonb #>> '{actor,type}' AS type, r.body::jsonb #>> '{actor,email}' AS email
             FROM (SELECT actor_id AS id, max(seq) AS seq, count(*) AS count FROM audit_records
                    WHERE ${where} AND kind = 'http.request' AND actor_id IS NOT NULL
                    GROUP BY actor_id ORDER BY count DESC, id LIMIT 10) t
             JOIN audit_records r ON r.seq = t.seq
            ORDER BY t.count DESC, t.id`,
          range,
        )
      ).rows.map((p) => ({ id: p.id, type: p.type, ...(p.email === null ? {} : { email: p.email }), count: p.count }));
      const topEndpoints = (
        await c.query<{ action: string; resource: string; count: number }>(
          `SELECT * FROM (
             SELECT action, coalesce(body::jsonb #>> '{request,resource}', '') AS resource, count(*) AS count
               FROM audit_records WHERE ${where} AND kind = 'http.request' AND action IS NOT NULL
              GROUP BY action, resource) t
            ORDER BY count DESC, action COLLATE "C", resource COLLATE "C" LIMIT 10`,
          range,
        )
      ).rows;
      const authFailures = (
        await c.query<{ n: number }>(
          `SELECT count(*) AS n FROM audit_records
            WHERE ${where} AND kind IN ('auth.login', 'auth.step_up', 'auth.register')
              AND body::jsonb ->> 'outcome' = 'failure'`,
          range,
        )
      ).rows[0]?.n as number;
      await c.query('COMMIT');
      return {
        window,
        from,
        to,
        bucketMs,
        buckets: list,
        topPrincipals,
        topEndpoints,
        requests,
        denials: list.reduce((s, x) => s + x.deny, 0),
        stepUps: list.reduce((s, x) => s + x.step_up, 0),
        authFailures,
        partial: lo > lo0,
      };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
