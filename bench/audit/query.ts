/**
 * The query target: a log of (by default) 10 million records over 30 days, and the first page
 * (100 records) of one actor's records over one day, as the admin API asks for it.
 *
 * The fixture is written once with SqliteChain itself — the real schema, time blocks,
 * checkpoints, and the actor index built behind the writer by the chain's own policy
 * (DEFAULT_INDEX_POLICY) — with two build-only shortcuts: synchronous=OFF (no fsync per batch)
 * and a 256 MiB page cache. It is cached in bench/results/ (git-ignored) with a JSON
 * description beside it, and reused when the description matches.
 *
 * Queries run on a fresh read-only connection, as the gateway's reader is opened:
 * - os-cold: the fixture's pages dropped from the OS page cache first (`dd iflag=nocache`, for
 *   this file only), then a new connection and one query — the worst case (a disk read per page);
 * - first: a new connection and its first query, OS cache warm (a restarted gateway);
 * - warm: different actor/day pairs, one after another on one connection;
 * - by kind: `kind` + one day (no actor), the common kind and two rare filters, for contrast.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { exportJWK, generateKeyPair } from 'jose';
import { type AuditFilter, queryAudit } from '../../src/audit/query.js';
import {
  AUDIT_FORMAT,
  BLOCK,
  DEFAULT_INDEX_POLICY,
  openAuditDb,
  type QueuedRecord,
  queued,
  SqliteChain,
  signerFor,
} from '../../src/audit/sqlite-chain.js';
import { type Interference, watchInterference } from '../proxy/quiet.js';
import { actorId, makeActors, makeEntry, rng } from './entries.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 9, 1);

export interface QueryOptions {
  records: number;
  days: number;
  /** Folder of the cached fixture. */
  dir: string;
  /** Queries per measured group. */
  samples: number;
  /** Drop the fixture from the OS page cache for the os-cold group. */
  osCold: boolean;
  rebuild: boolean;
}

interface FixtureMeta {
  format: number;
  records: number;
  days: number;
  t0: number;
  actors: number;
  seed: number;
  buildSeconds: number;
  bytes: number;
  indexedThrough: number;
}

export interface QuerySample {
  filter: AuditFilter;
  ms: number;
  lines: number;
  more: boolean;
  /** Records of that actor in that day (counted afterwards, untimed). */
  slice?: number;
}

export interface QueryGroup {
  name: string;
  samples: QuerySample[];
  p50: number;
  max: number;
}

export interface QueryResult {
  fixture: FixtureMeta & { path: string; reused: boolean };
  /** Share of the fixture in the OS page cache (null: fincore missing) before and after reading it through. */
  pageCache: { residentBefore: number | null; warmSeconds: number; residentAfter: number | null };
  groups: QueryGroup[];
  /** Other processes' CPU while the queries ran (not the fixture build). */
  interference?: Interference;
}

const SEED = 10;

function fixturePaths(o: QueryOptions) {
  const base = join(o.dir, `audit-${o.records}-${o.days}d`);
  return { db: `${base}.db`, meta: `${base}.json`, building: `${base}.building.db` };
}

function removeDb(p: string): void {
  for (const f of [p, `${p}-wal`, `${p}-shm`]) rmSync(f, { force: true });
}

function cachedFixture(o: QueryOptions): FixtureMeta | undefined {
  const p = fixturePaths(o);
  if (o.rebuild || !existsSync(p.db) || !existsSync(p.meta)) return undefined;
  const meta = JSON.parse(readFileSync(p.meta, 'utf8')) as FixtureMeta;
  if (meta.format !== AUDIT_FORMAT || meta.records !== o.records || meta.days !== o.days) return undefined;
  const db = new Database(p.db, { readonly: true, fileMustExist: true });
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    const last = db.prepare('SELECT max(seq) AS s FROM audit_records').get() as { s: number | null };
    return version === AUDIT_FORMAT && last.s === o.records ? meta : undefined;
  } finally {
    db.close();
  }
}

async function buildFixture(o: QueryOptions, progress: (line: string) => void): Promise<FixtureMeta> {
  const p = fixturePaths(o);
  mkdirSync(o.dir, { recursive: true });
  removeDb(p.building);
  removeDb(p.db);
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const db = openAuditDb(p.building);
  // Build-only: no fsync per batch, a larger page cache. Schema, indexes and policy are the real ones.
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -262144');
  const chain = new SqliteChain(
    db,
    { every: 10_000, everyMs: 60_000, sign: await signerFor({ kid: 'bench', jwk: await exportJWK(privateKey) }) },
    Date.now,
    DEFAULT_INDEX_POLICY,
  );
  const actors = makeActors();
  const r = rng(SEED);
  const span = o.days * DAY;
  const batch = 5000;
  const start = performance.now();
  let lastReport = start;
  for (let i = 0; i < o.records; i += batch) {
    const n = Math.min(batch, o.records - i);
    const q: QueuedRecord[] = new Array(n);
    for (let k = 0; k < n; k++) {
      // Evenly spread over the days, with the small disorder of entries stamped when queued.
      const at = T0 + Math.floor(((i + k) * span) / o.records) + Math.floor(r() * 20);
      q[k] = queued(makeEntry(actors, r, at));
    }
    await chain.append(q);
    const now = performance.now();
    if (now - lastReport > 30_000) {
      lastReport = now;
      const done = i + n;
      const rate = done / ((now - start) / 1000);
      progress(
        `fixture: ${done.toLocaleString('en')} of ${o.records.toLocaleString('en')} records, ${rate.toFixed(0)}/s, ` +
          `~${((o.records - done) / rate / 60).toFixed(0)} min left`,
      );
    }
  }
  // Whatever the policy left unindexed is indexed by the next append or tick in the gateway.
  chain.indexIfDue(Number.MAX_SAFE_INTEGER);
  const indexedThrough = chain.actorIndexedThrough;
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const buildSeconds = (performance.now() - start) / 1000;
  for (const s of ['', '-wal', '-shm']) if (existsSync(p.building + s)) renameSync(p.building + s, p.db + s);
  const meta: FixtureMeta = {
    format: AUDIT_FORMAT,
    records: o.records,
    days: o.days,
    t0: T0,
    actors: actors.list.length,
    seed: SEED,
    buildSeconds,
    bytes: statSync(p.db).size,
    indexedThrough,
  };
  writeFileSync(p.meta, `${JSON.stringify(meta, null, 2)}\n`);
  return meta;
}

/** Drop one file's pages from the OS page cache (it is clean: the fixture is never written here). */
function dropFromPageCache(path: string): void {
  for (const f of [path, `${path}-wal`]) {
    if (!existsSync(f)) continue;
    execFileSync('sync', [f]);
    execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
  }
}

/** Read a file once, so that the OS page cache holds it (as far as memory allows). */
function readThrough(path: string): void {
  execFileSync('dd', [`if=${path}`, 'of=/dev/null', 'bs=8M', 'status=none']);
}

/** Share of a file in the OS page cache, from util-linux's fincore (null when it is missing). */
function residentShare(path: string): number | null {
  try {
    const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES,SIZE', path], {
      encoding: 'utf8',
    });
    const [res, size] = out.trim().split(/\s+/).map(Number);
    return res !== undefined && size !== undefined && size > 0 ? res / size : null;
  } catch {
    return null;
  }
}

const pct = (x: number | null) => (x === null ? '?' : `${(x * 100).toFixed(0)} %`);

/** As the gateway's audit reader: read-only, the file must exist. */
function openReader(path: string): Database.Database {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  return db;
}

function timed(db: Database.Database, filter: AuditFilter): QuerySample {
  const t = performance.now();
  const page = queryAudit(db, filter, { limit: 100 });
  const ms = performance.now() - t;
  return { filter, ms, lines: page.lines.length, more: page.next !== null };
}

function group(name: string, samples: QuerySample[]): QueryGroup {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const mid = Math.floor(ms.length / 2);
  const p50 = ms.length % 2 === 1 ? (ms[mid] as number) : ((ms[mid - 1] as number) + (ms[mid] as number)) / 2;
  return { name, samples, p50, max: ms.at(-1) as number };
}

export async function queryBench(o: QueryOptions, progress: (line: string) => void): Promise<QueryResult> {
  const p = fixturePaths(o);
  let meta = cachedFixture(o);
  const reused = meta !== undefined;
  if (meta === undefined) {
    progress(`fixture: building ${p.db} (${o.records.toLocaleString('en')} records over ${o.days} days)`);
    meta = await buildFixture(o, progress);
    progress(`fixture: built in ${(meta.buildSeconds / 60).toFixed(1)} min, ${(meta.bytes / 1e9).toFixed(2)} GB`);
  } else {
    progress(`fixture: reusing ${p.db} (${(meta.bytes / 1e9).toFixed(2)} GB)`);
  }

  // Actor/day pairs: actors uniformly from the 1,000 (so mostly the quieter ones: activity is
  // skewed), days away from the ends of the range.
  const r = rng(42);
  const pair = (): AuditFilter => {
    const since = T0 + (1 + Math.floor(r() * (o.days - 2))) * DAY;
    return { actor: actorId(Math.floor(r() * meta.actors)), since, until: since + DAY };
  };
  const day = (): { since: number; until: number } => {
    const since = T0 + (1 + Math.floor(r() * (o.days - 2))) * DAY;
    return { since, until: since + DAY };
  };
  const groups: QueryGroup[] = [];
  const coldN = Math.max(3, Math.floor(o.samples / 4));
  const actorPage = () => timed(db, pair());

  // The OS-warm groups first, with the whole fixture read into the page cache (a host whose
  // memory holds the log); the group that drops it from the cache last.
  const residentBefore = residentShare(p.db);
  const t = performance.now();
  readThrough(p.db);
  const pageCache = { residentBefore, warmSeconds: (performance.now() - t) / 1000, residentAfter: residentShare(p.db) };
  progress(
    `page cache: ${pct(pageCache.residentBefore)} of the fixture resident, read through in ${pageCache.warmSeconds.toFixed(1)} s, now ${pct(pageCache.residentAfter)}`,
  );
  const stop = watchInterference(() => []);
  let db: Database.Database;
  {
    const samples: QuerySample[] = [];
    for (let i = 0; i < coldN; i++) {
      db = openReader(p.db);
      samples.push(actorPage());
      db.close();
    }
    groups.push(group('actor + day, first query on a new connection', samples));
  }
  db = openReader(p.db);
  // Prepare the statements on this connection first (one query outside the samples).
  actorPage();
  groups.push(group('actor + day, warm connection', Array.from({ length: o.samples }, actorPage)));
  const byDay = (extra: AuditFilter) => () => timed(db, { ...extra, ...day() });
  groups.push(group('kind=http.request + day', Array.from({ length: o.samples }, byDay({ kind: 'http.request' }))));
  groups.push(
    group('kind=auth.login + day (0.4 % of records)', Array.from({ length: o.samples }, byDay({ kind: 'auth.login' }))),
  );
  groups.push(group('decision=deny + day (~3.5 %)', Array.from({ length: o.samples }, byDay({ decision: 'deny' }))));
  db.close();
  if (o.osCold) {
    const samples: QuerySample[] = [];
    for (let i = 0; i < coldN; i++) {
      dropFromPageCache(p.db);
      db = openReader(p.db);
      samples.push(actorPage());
      db.close();
    }
    groups.push(group('actor + day, OS cache dropped, new connection', samples));
  }
  const interference = stop();
  db = openReader(p.db);
  // How big each actor-day slice was (untimed).
  const count = db.prepare(
    `SELECT count(*) AS n FROM audit_actor_index i JOIN audit_records r ON r.seq = i.seq
      WHERE i.actor_id = :actor
        AND i.seq >= (SELECT min(block) * ${BLOCK} FROM audit_time_blocks WHERE max_at >= :since)
        AND i.seq < (SELECT (max(block) + 1) * ${BLOCK} FROM audit_time_blocks WHERE min_at < :until)
        AND r.at >= :since AND r.at < :until`,
  );
  for (const g of groups) {
    for (const s of g.samples) {
      if (s.filter.actor !== undefined) s.slice = (count.get(s.filter) as { n: number }).n;
    }
  }
  db.close();
  return {
    fixture: { ...meta, path: p.db, reused },
    pageCache,
    groups,
    ...(interference === undefined ? {} : { interference }),
  };
}
