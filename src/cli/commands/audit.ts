/**
 * `keygate audit …` on the audit log (the SQLite file beside the store, or the chain in
 * PostgreSQL when the store is there: one chain for every replica):
 *   verify  walk the chain and its signed checkpoints; exit 1 at the first broken or missing record
 *   export  the records of a time range as JSON Lines (each record with seq, prevHash and hash,
 *           so the chain re-checks from the export alone) or as OCSF events
 *   tail    the latest records, filtered, optionally following new ones
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { JWK } from 'jose';
import { toOcsf } from '../../audit/ocsf.js';
import { PgChain } from '../../audit/pg-chain.js';
import { exportRange, lineAt } from '../../audit/query.js';
import type { ChainedRecord } from '../../audit/record.js';
import { openAuditDb } from '../../audit/sqlite-chain.js';
import { verifyChain, verifySource } from '../../audit/verify.js';
import { parseTime } from '../../lib/time.js';
import type { Config } from '../../config/schema.js';
import { openStore, postgresUrl } from '../../store/open.js';
import { EXIT, type Output } from '../output.js';
import { loadOrReport } from './serve.js';

/** Where the log is: a SQLite file (`path`), or PostgreSQL (`pg`, a reader on the shared chain). */
type Located = { config: Config; path: string; pg?: undefined } | { config: Config; path?: undefined; pg: PgChain };

function locate(o: { config?: string; file?: string }, out: Output, env: NodeJS.ProcessEnv): Located | undefined {
  const loaded = loadOrReport(o.config, out, env);
  if (!loaded) return undefined;
  const { config } = loaded;
  const url = o.file === undefined ? postgresUrl(config, env) : undefined;
  if (url !== undefined)
    return {
      config,
      pg: new PgChain({ connectionString: url, checkpoint: { every: 0, everyMs: 0, sign: undefined } }),
    };
  const storePath = config.store.path ?? `${config.dataDir}/keygate.db`;
  const path = o.file ?? config.audit.path ?? `${dirname(storePath)}/audit.db`;
  if (!existsSync(path)) {
    out.err(`keygate: no audit log at ${path}`);
    return undefined;
  }
  return { config, path };
}

/** An ISO 8601 time or epoch milliseconds. */
function timeArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = parseTime(v);
  if (n === undefined) throw new Error(`--${name}: not a time (use ISO 8601, e.g. 2026-11-28T00:00:00Z)`);
  return n;
}

export async function auditExport(
  o: { config?: string; file?: string; since?: string; until?: string; format: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (o.format !== 'jsonl' && o.format !== 'ocsf') {
    out.err(`keygate: --format ${o.format}: use jsonl or ocsf`);
    return EXIT.USAGE;
  }
  let since: number | undefined;
  let until: number | undefined;
  try {
    since = timeArg(o.since, 'since');
    until = timeArg(o.until, 'until');
  } catch (e) {
    out.err(`keygate: ${(e as Error).message}`);
    return EXIT.USAGE;
  }
  const where = locate(o, out, env);
  if (where === undefined) return EXIT.FAILED;
  const db = where.pg === undefined ? openAuditDb(where.path) : undefined;
  try {
    let n = 0;
    const lines = db !== undefined ? exportRange(db, since, until) : (where.pg as PgChain).exportRange(since, until);
    for await (const line of lines) {
      out.out(o.format === 'ocsf' ? JSON.stringify(toOcsf(JSON.parse(line) as ChainedRecord)) : line);
      n++;
    }
    out.err(`${n} records`);
    return EXIT.OK;
  } finally {
    db?.close();
    await where.pg?.close();
  }
}

export interface TailOptions {
  config?: string;
  file?: string;
  lines: number;
  kind?: string;
  actor?: string;
  action?: string;
  decision?: string;
  follow: boolean;
  pollMs?: number;
}

export async function auditTail(
  o: TailOptions,
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  stop: AbortSignal = new AbortController().signal,
): Promise<number> {
  const where = locate(o, out, env);
  if (where === undefined) return EXIT.FAILED;
  if (where.pg !== undefined) return tailPostgres(where.pg, o, out, stop);
  const db = openAuditDb(where.path);
  const filters: [column: string, value: string | undefined][] = [
    ['kind', o.kind],
    ['actor_id', o.actor],
    ['action', o.action],
    ['decision', o.decision],
  ];
  const params = Object.fromEntries(filters.filter(([, v]) => v !== undefined));
  const filter = filters.map(([c, v]) => (v === undefined ? '' : ` AND ${c} = @${c}`)).join('');
  try {
    const last = (
      db.prepare(`SELECT seq FROM audit_records WHERE 1 = 1${filter} ORDER BY seq DESC LIMIT @n`).all({
        ...params,
        n: o.lines,
      }) as { seq: number }[]
    ).reverse();
    for (const r of last) out.out(lineAt(db, r.seq));
    if (!o.follow) return EXIT.OK;
    const newest = db.prepare('SELECT max(seq) AS s FROM audit_records');
    let after = (newest.get() as { s: number | null }).s ?? 0;
    const next = db.prepare(`SELECT seq FROM audit_records WHERE seq > @after${filter} ORDER BY seq LIMIT 1000`);
    while (!stop.aborted) {
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
      const head = (newest.get() as { s: number | null }).s ?? after;
      for (const r of next.all({ ...params, after }) as { seq: number }[])
        if (r.seq <= head) out.out(lineAt(db, r.seq));
      after = head;
    }
    return EXIT.OK;
  } finally {
    db.close();
  }
}

async function tailPostgres(pg: PgChain, o: TailOptions, out: Output, stop: AbortSignal): Promise<number> {
  const f = {
    ...(o.kind === undefined ? {} : { kind: o.kind }),
    ...(o.actor === undefined ? {} : { actor: o.actor }),
    ...(o.action === undefined ? {} : { action: o.action }),
    ...(o.decision === undefined ? {} : { decision: o.decision }),
  };
  try {
    for (const r of await pg.latest(f, o.lines)) out.out(r.line);
    if (!o.follow) return EXIT.OK;
    let after = await pg.head();
    while (!stop.aborted) {
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
      // Up to the head as it is now: a record past it is printed on the next round, in order.
      const head = await pg.head();
      for (let more = true; more; ) {
        const rows = (await pg.latest(f, 1000, after)).filter((r) => r.seq <= head);
        for (const r of rows) out.out(r.line);
        more = rows.length === 1000;
        if (more) after = (rows.at(-1) as { seq: number }).seq;
      }
      after = head;
    }
    return EXIT.OK;
  } finally {
    await pg.close();
  }
}

export async function auditVerify(
  o: { config?: string; file?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const where = locate(o, out, env);
  if (where === undefined) return EXIT.FAILED;
  const { config } = where;
  // The checkpoint keys are the store's audit keys (all of them, retired ones too).
  const store = openStore(config, env);
  let keys: JWK[];
  try {
    await store.migrate();
    keys = (await store.listSigningKeys('audit')).map((k) => JSON.parse(k.publicJwk) as JWK);
  } catch (e) {
    await where.pg?.close();
    throw e;
  } finally {
    await store.close();
  }
  const db = where.pg === undefined ? openAuditDb(where.path) : undefined;
  try {
    const started = performance.now();
    const r =
      db !== undefined ? await verifyChain(db, { keys }) : await verifySource((where.pg as PgChain).source(), { keys });
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
    db?.close();
    await where.pg?.close();
  }
}
