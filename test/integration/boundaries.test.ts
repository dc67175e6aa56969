/**
 * The boundaries that keep the house simple (STYLE.md): sim/ is a stranger to src/, and the
 * store imports nothing from the services above it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g)].map((m) => m[1] as string);
}

describe('module boundaries', () => {
  it('nothing in src/ imports sim/ (the CLI loads it by path at run time)', () => {
    const offenders = files(join(root, 'src')).filter((f) => imports(f).some((i) => i.includes('/sim/')));
    expect(offenders.map((f) => relative(root, f))).toEqual([]);
  });

  it('nothing in sim/ imports src/', () => {
    const offenders = files(join(root, 'sim')).filter((f) => imports(f).some((i) => i.includes('/src/')));
    expect(offenders.map((f) => relative(root, f))).toEqual([]);
  });

  it('the store imports nothing from the services above it', () => {
    const above = ['/authenticate/', '/authorize/', '/proxy/', '/server/', '/oauth/', '/admin/', '/audit/', '/cli/'];
    const offenders = files(join(root, 'src/store')).filter((f) =>
      imports(f).some((i) => above.some((a) => i.includes(`..${a}`))),
    );
    expect(offenders.map((f) => relative(root, f))).toEqual([]);
  });
});
