/**
 * Reading the one JSON field that classification needs (`model`, `name`, `job_id`) from a
 * request body, without changing the bytes that are forwarded. The whole body must fit in
 * MAX_BYTES, must be a JSON object, and must name the field exactly once at the top level: a
 * duplicated key is refused, because parsers disagree on which copy wins and the upstream must
 * act on the same resource that was authorized.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { KeygateError } from '../errors/index.js';

export const MAX_BODY_FOR_CLASSIFICATION = 1024 * 1024;

function refuse(message: string, detail: string): KeygateError {
  return new KeygateError('BAD_REQUEST', { message, detail });
}

/** Top-level keys of a JSON object text, in order (nested values are skipped). */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      // Scan the string, honouring escapes.
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        keys.push(JSON.parse(text.slice(i, j + 1)) as string);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1 && c === '{') expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

/** The whole body of a stream, refused with 400 past `max` bytes. */
export async function readBounded(
  stream: AsyncIterable<unknown>,
  max: number,
  tooLarge = `This request names its resource in the body, which must be at most ${max} bytes.`,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    length += (chunk as Buffer).length;
    if (length > max) {
      throw refuse(tooLarge, 'body too large');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Read the body (bounded), extract `field`, and return a stream that replays the same bytes. */
export async function readBodyField(
  req: IncomingMessage,
  field: string,
): Promise<{ value: string; body: Readable; length: number }> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_FOR_CLASSIFICATION) {
    throw refuse(
      `This request names its resource in the body, which must be at most ${MAX_BODY_FOR_CLASSIFICATION} bytes.`,
      'body too large to classify',
    );
  }
  const raw = await readBounded(req, MAX_BODY_FOR_CLASSIFICATION);
  let parsed: unknown;
  const text = raw.toString('utf8');
  try {
    parsed = JSON.parse(text);
  } catch {
    throw refuse('The request body is not valid JSON.', 'body not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw refuse('The request body must be a JSON object.', 'body not an object');
  }
  const value = (parsed as Record<string, unknown>)[field];
  // Names (`model`, `name`) are strings; only ids (`job_id`) may be JSON integers.
  const integerAllowed = field.endsWith('_id');
  if (typeof value !== 'string' && !(integerAllowed && typeof value === 'number' && Number.isSafeInteger(value))) {
    throw refuse(`The request body must name the resource in "${field}".`, `no usable ${field}`);
  }
  const v = String(value);
  if (v === '' || v.length > 256 || v.includes('*')) {
    throw refuse(`"${field}" does not name a resource.`, `bad ${field}`);
  }
  if (topLevelKeys(text).filter((k) => k === field).length !== 1) {
    throw refuse(`"${field}" appears more than once in the request body.`, `duplicate ${field}`);
  }
  return { value: v, body: Readable.from([raw]), length: raw.length };
}
