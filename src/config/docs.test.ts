import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configurationMarkdown, editorSchema } from './docs.js';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

describe('generated configuration docs', () => {
  it('docs/configuration.md is up to date (run `npm run docs:config`)', () => {
    expect(read('docs/configuration.md')).toBe(configurationMarkdown());
  });

  it('docs/keygate.schema.json is up to date (run `npm run docs:config`)', () => {
    expect(read('docs/keygate.schema.json')).toBe(editorSchema());
  });

  it('the editor schema forbids unknown keys at the top level', () => {
    const schema = JSON.parse(editorSchema()) as { additionalProperties?: unknown };
    expect(schema.additionalProperties).toBe(false);
  });
});
