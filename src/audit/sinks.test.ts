import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSink, writeStdout } from './sinks.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kg-sinks-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const line = (seq: number, pad = 0) =>
  `{"seq":${seq},"prevHash":"p","hash":"h","kind":"http.request","x":"${'x'.repeat(pad)}"}`;
const seqsIn = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);

describe('the JSON Lines file sink', () => {
  it('appends lines and rotates by size, keeping the configured number of files', () => {
    const path = join(dir, 'audit.jsonl');
    const sink = new FileSink({ path, maxBytes: 1000, keep: 2 });
    // Each line is ~170 bytes: five fit in 1,000.
    for (let seq = 1; seq <= 30; seq++) sink.write([line(seq, 100)]);
    sink.close();
    const current = seqsIn(path);
    const older = seqsIn(`${path}.1`);
    const oldest = seqsIn(`${path}.2`);
    expect(existsSync(`${path}.3`)).toBe(false);
    // Contiguous across the rotated files, newest last; the oldest beyond `keep` are gone.
    expect([...oldest, ...older, ...current]).toEqual(
      Array.from(
        { length: oldest.length + older.length + current.length },
        (_, i) => 31 - (oldest.length + older.length + current.length) + i,
      ),
    );
    expect(current.at(-1)).toBe(30);
    for (const p of [path, `${path}.1`]) expect(readFileSync(p).length).toBeLessThanOrEqual(1000);
  });

  it('resumes after its last complete line, and drops a line cut by a crash', () => {
    const path = join(dir, 'audit.jsonl');
    const first = new FileSink({ path, maxBytes: 1e9, keep: 1 });
    expect(first.resumeAfter).toBe(0);
    first.write([line(1), line(2), line(3)]);
    first.close();
    // A crash in the middle of writing record 4.
    appendFileSync(path, line(4).slice(0, 20));
    const again = new FileSink({ path, maxBytes: 1e9, keep: 1 });
    expect(again.resumeAfter).toBe(3);
    again.write([line(4), line(5)]);
    again.close();
    expect(seqsIn(path)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('the stdout sink', () => {
  it('writes every line, in whole lines per write, no write larger than a pipe keeps whole', () => {
    const chunks: string[] = [];
    const lines = Array.from({ length: 100 }, (_, i) => line(i + 1, 300));
    writeStdout(lines, (c) => chunks.push(c));
    expect(chunks.length).toBeGreaterThan(5);
    for (const c of chunks) {
      expect(Buffer.byteLength(c)).toBeLessThanOrEqual(4096);
      expect(c.endsWith('\n')).toBe(true);
    }
    expect(chunks.join('')).toBe(`${lines.join('\n')}\n`);
  });
});
