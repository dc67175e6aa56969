import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../errors/index.js';
import { readBodyField, topLevelKeys } from './body-field.js';

function req(body: string, headers: Record<string, string> = {}): IncomingMessage {
  const r = Readable.from([Buffer.from(body)]) as unknown as IncomingMessage;
  r.headers = headers;
  return r;
}

async function refused(body: string): Promise<string> {
  try {
    await readBodyField(req(body), 'model');
  } catch (e) {
    expect(e).toBeInstanceOf(KeygateError);
    expect((e as KeygateError).code).toBe('BAD_REQUEST');
    return (e as KeygateError).detail ?? '';
  }
  throw new Error('not refused');
}

describe('body field for classification', () => {
  it('reads the field and replays the identical bytes', async () => {
    const body = '{"messages":[{"role":"user","content":"{\\"model\\":\\"x\\"}"}],"model":"chat-llm","stream":true}';
    const r = await readBodyField(req(body), 'model');
    expect(r.value).toBe('chat-llm');
    const chunks: Buffer[] = [];
    for await (const c of r.body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(body);
    expect(r.length).toBe(Buffer.byteLength(body));
  });

  it('accepts integer ids (job_id)', async () => {
    expect((await readBodyField(req('{"job_id": 11}'), 'job_id')).value).toBe('11');
  });

  it.each([
    ['{"model":"a","model":"b"}', 'duplicate model'],
    ['{"messages":[]}', 'no usable model'],
    ['{"model":["a"]}', 'no usable model'],
    ['{"model":"*"}', 'bad model'],
    ['{"model":""}', 'bad model'],
    ['not json', 'body not JSON'],
    ['["model","a"]', 'body not an object'],
    ['{"model":"a"', 'body not JSON'],
  ])('refuses %s', async (body, detail) => {
    expect(await refused(body)).toBe(detail);
  });

  it('refuses a body larger than the bound, by header or by bytes', async () => {
    await expect(readBodyField(req('{}', { 'content-length': String(2 * 1024 * 1024) }), 'model')).rejects.toThrow(
      /at most/,
    );
    const big = `{"model":"a","pad":"${'x'.repeat(1024 * 1024)}"}`;
    await expect(readBodyField(req(big), 'model')).rejects.toThrow(/at most/);
  });

  it('topLevelKeys skips nested objects and strings with braces', () => {
    expect(topLevelKeys('{"a":{"model":1},"b":"}{\\"model\\"","model":"x","c":[{"model":2}]}')).toEqual([
      'a',
      'b',
      'model',
      'c',
    ]);
  });
});
