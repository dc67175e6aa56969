/**
 * Summarise a V8 .cpuprofile (from `run.ts --profile`): the functions with the most self
 * time, and the share of time under each of Keygate's own source files (inclusive), both as
 * a share of the time the thread was busy (idle excluded).
 *
 *   npx tsx bench/proxy/profile-top.ts bench/results/profiles/<file>.cpuprofile [count]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, count = '25'] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: profile-top.ts <file.cpuprofile> [count]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const short = (url: string) => url.replace(/^file:\/\/.*?\/(node_modules|src)\//, '$1/').replace(/^node:/, 'node:');
const label = (n: Node) =>
  `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const self = new Map<string, number>();
const inclusiveByFile = new Map<string, number>();
let total = 0;
let idle = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const node = byId.get(id) as Node;
  if (node.callFrame.functionName === '(idle)') {
    idle += dt;
    return;
  }
  total += dt;
  self.set(label(node), (self.get(label(node)) ?? 0) + dt);
  // Inclusive time per src/ file: count each file once per sample.
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const url = (byId.get(cur) as Node).callFrame.url;
    if (url.includes('/src/') && !seen.has(url)) {
      seen.add(url);
      inclusiveByFile.set(short(url), (inclusiveByFile.get(short(url)) ?? 0) + dt);
    }
  }
});

const pct = (x: number) => `${((x / total) * 100).toFixed(1).padStart(5)}%`;
console.log(`self time, top ${count}, of ${(total / 1e6).toFixed(1)} s busy (${(idle / 1e6).toFixed(1)} s idle):`);
for (const [name, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(count)))
  console.log(`${pct(t)}  ${name}`);
console.log('\ninclusive time under Keygate source files:');
for (const [name, t] of [...inclusiveByFile].sort((a, b) => b[1] - a[1])) console.log(`${pct(t)}  ${name}`);
