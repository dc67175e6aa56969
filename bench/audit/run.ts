/**
 * bench/audit: the audit log of issue 6 against its three targets.
 *
 *   writer  records/s through queued() + SqliteChain.append (parts timed apart) and through
 *           AuditLog with its writer thread, at batchMax 5,000, 500 and 50 (the proxy's batches:
 *           what arrives in the 10 ms flush interval); then verifyChain
 *           (≥ 50,000 records/s)
 *   proxy   bench/proxy with keygate, keygate-noaudit and bare-node interleaved in one run
 *           (audit costs ≤ 10 % of proxy throughput)
 *   query   first page of one actor over one day in a 10-million-record log (< 100 ms)
 *
 *   npx tsx bench/audit/run.ts [all|writer|proxy|query] [--records 1000000] [--batches 5000,500,50]
 *       [--no-deployed] [--no-verify] [--rounds 3] [--duration 10] [--proxy-report <file>]
 *       [--query-records 10000000] [--days 30] [--samples 20] [--no-os-cold] [--rebuild]
 *   npx tsx bench/audit/run.ts --report bench/results/audit-<time>.json   (re-print a saved run)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Interference, watchInterference } from '../proxy/quiet.js';
import { type ProxyResult, proxyBench } from './proxy.js';
import { type QueryResult, queryBench } from './query.js';
import { type WriterResult, writerBench } from './writer.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '../..');
const RESULTS = join(ROOT, 'bench/results');

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    records: { type: 'string', default: '1000000' },
    batches: { type: 'string', default: '5000,500,50' },
    'no-deployed': { type: 'boolean', default: false },
    'no-verify': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string' },
    'proxy-report': { type: 'string' },
    'query-records': { type: 'string', default: '10000000' },
    days: { type: 'string', default: '30' },
    samples: { type: 'string', default: '20' },
    'no-os-cold': { type: 'boolean', default: false },
    rebuild: { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});

interface Saved {
  machine: Record<string, string | number>;
  command: string[];
  writer?: WriterResult & { interference?: Interference };
  proxy?: ProxyResult;
  query?: QueryResult;
}

function git(argv: string[]): string {
  try {
    return execFileSync('git', argv, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

const f = (x: number, d = 0) => x.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d });
const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
const foreign = (i: Interference | undefined) =>
  i === undefined ? '' : ` (other processes: ${i.foreignPct} % of a core on average; steal ${i.stealPct} %)`;

function report(s: Saved): void {
  console.log(`\n### bench/audit — ${s.machine.cpus}× ${s.machine.cpu}, Node ${s.machine.node}, ${s.machine.when}\n`);
  console.log(`\`${['npx tsx', ...s.command].join(' ')}\`\n`);
  if (s.writer !== undefined) {
    const w = s.writer;
    console.log(`**Writer** (${f(w.parts[0]?.records ?? 0)} records per run)${foreign(w.interference)}\n`);
    console.log(
      '| batch | encode µs/rec (request thread) | writer µs/rec (wall) | · flatten | · hash | · actor index | · SQLite + FULL commit | writer CPU µs/rec | records/s, one thread | records/s, bound with two threads | records/s as deployed (AuditLog + writer thread) |',
    );
    console.log(`|${'---|'.repeat(11)}`);
    for (const p of w.parts) {
      const d = w.deployed.find((x) => x.batch === p.batch);
      const cells = [
        f(p.batch),
        f(p.encodeUs, 2),
        f(p.writerUs, 2),
        f(p.flattenUs, 2),
        f(p.hashUs, 2),
        `${f(p.indexUs, 2)} (${p.indexRuns} runs)`,
        f(p.sqliteUs, 2),
        f(p.writerCpuUs, 2),
        f(p.serialPerS),
        f(p.pipelinedPerS),
        d === undefined ? '–' : `${f(d.perS)} (${d.waits} waits)`,
      ];
      console.log(`| ${cells.join(' | ')} |`);
    }
    const p0 = w.parts[0];
    if (p0 !== undefined) {
      console.log(
        `\nRecords: ${f(p0.avgBodyBytes)} bytes of canonical JSON on average; ${f(p0.fileBytes / p0.records)} bytes per record on disk (table, time blocks, actor index, checkpoints).`,
      );
    }
    const d0 = w.deployed[0];
    if (d0 !== undefined) {
      console.log(
        `As deployed, batchMax ${f(d0.batch)}: ${f(d0.perS)} records/s — ≥ 50,000 records/s: ${verdict(d0.perS >= 50_000)}` +
          ` (record() on the request thread: ${f(d0.recordUs, 2)} µs per record).`,
      );
    }
    if (w.verify !== undefined) {
      console.log(
        `Verify (\`verifyChain\`, what \`keygate audit verify\` runs): ${f(w.verify.records)} records and ${w.verify.checkpoints} checkpoints in ${f(w.verify.seconds, 1)} s (${f(w.verify.perS)} records/s), ok=${w.verify.ok}.`,
      );
    }
  }
  if (s.proxy !== undefined) {
    const p = s.proxy;
    console.log(
      `\n**Proxy, audit on vs off** (${p.rounds} interleaved rounds; \`${p.file.replace(`${ROOT}/`, '')}\`)\n`,
    );
    console.log('| target | req/s (median) | × bare-node (median of rounds) | p99 ms at the fixed rate |');
    console.log(`|${'---|'.repeat(4)}`);
    const vsBare: Record<string, number> = {
      'bare-node': 1,
      keygate: p.keygateVsBare,
      'keygate-noaudit': p.noauditVsBare,
    };
    for (const n of Object.keys(p.rps)) {
      console.log(`| ${n} | ${f(p.rps[n] as number)} | ${f(vsBare[n] as number, 2)} | ${f(p.p99[n] as number, 3)} |`);
    }
    console.log(
      `\nAudit cost = 1 − keygate / keygate-noaudit: **${f(p.cost * 100, 1)} %** (per round: ${p.costPerRound.map((c) => `${f(c * 100, 1)} %`).join(', ')}) — ≤ 10 %: ${verdict(p.cost <= 0.1)}. Highest foreign CPU during a measurement: ${p.maxForeignPct} % of a core.`,
    );
  }
  if (s.query !== undefined) {
    const q = s.query;
    const fx = q.fixture;
    console.log(
      `\n**Query** (${f(fx.records)} records over ${fx.days} days, ${fx.actors} actors, ${f(fx.bytes / 1e9, 2)} GB; first page = 100 records)${foreign(q.interference)}\n`,
    );
    console.log('| query | n | p50 ms | max ms | records on the page (min–max) | actor-day slice, records (min–max) |');
    console.log(`|${'---|'.repeat(6)}`);
    for (const g of q.groups) {
      const lines = g.samples.map((x) => x.lines);
      const slices = g.samples.flatMap((x) => (x.slice === undefined ? [] : [x.slice]));
      const range = (xs: number[]) => (xs.length === 0 ? '–' : `${f(Math.min(...xs))}–${f(Math.max(...xs))}`);
      console.log(
        `| ${g.name} | ${g.samples.length} | ${f(g.p50, 2)} | ${f(g.max, 2)} | ${range(lines)} | ${range(slices)} |`,
      );
    }
    const pc = q.pageCache;
    const share = (x: number | null) => (x === null ? '?' : `${f(x * 100)} %`);
    console.log(
      `\nOS page cache: ${share(pc.residentBefore)} of the fixture resident before the run; read through (${f(pc.warmSeconds, 1)} s) to ${share(pc.residentAfter)} for all groups but the last, which drops it before each query.`,
    );
    const actorMax = Math.max(...q.groups.filter((g) => g.name.startsWith('actor')).map((g) => g.max));
    console.log(
      `\nOne actor over one day, first page < 100 ms (slowest of all actor queries): ${verdict(actorMax < 100)}.`,
    );
  }
}

async function main(): Promise<void> {
  if (args.report !== undefined) {
    report(JSON.parse(readFileSync(args.report, 'utf8')) as Saved);
    return;
  }
  const what = positionals[0] ?? 'all';
  if (!['all', 'writer', 'proxy', 'query'].includes(what)) throw new Error(`unknown part ${what}`);
  const saved: Saved = {
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model ?? 'unknown',
      kernel: release(),
      node: process.version,
      when: new Date().toISOString(),
      // Read-only git: the commit, and whether the audit code differs from it (work in progress).
      commit: git(['rev-parse', '--short', 'HEAD']),
      auditCodeChanged: git(['status', '--porcelain', '--', 'src/audit', 'src/server']).split('\n').filter(Boolean)
        .length,
      loadBefore: loadavg()
        .map((x) => x.toFixed(2))
        .join(' '),
    },
    command: process.argv.slice(1).map((a) => a.replace(`${ROOT}/`, '')),
  };
  const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  mkdirSync(RESULTS, { recursive: true });

  if (what === 'all' || what === 'writer') {
    const dir = mkdtempSync(join(tmpdir(), 'kg-bench-audit-writer-'));
    try {
      const stop = watchInterference(() => []);
      const w = await writerBench(
        {
          records: Number(args.records),
          batches: args.batches.split(',').map(Number),
          deployed: !args['no-deployed'],
          verify: !args['no-verify'],
          dir,
        },
        log,
      );
      const interference = stop();
      saved.writer = interference === undefined ? w : { ...w, interference };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (what === 'all' || what === 'proxy') {
    saved.proxy = await proxyBench({
      rounds: Number(args.rounds),
      duration: args.duration === undefined ? undefined : Number(args.duration),
      report: args['proxy-report'],
      root: ROOT,
    });
  }
  if (what === 'all' || what === 'query') {
    saved.query = await queryBench(
      {
        records: Number(args['query-records']),
        days: Number(args.days),
        dir: join(RESULTS, 'audit-fixture'),
        samples: Number(args.samples),
        osCold: !args['no-os-cold'],
        rebuild: args.rebuild,
      },
      log,
    );
  }
  saved.machine.loadAfter = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  report(saved);
  const file = join(RESULTS, `audit-${what}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
}
