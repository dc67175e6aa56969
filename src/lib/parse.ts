import type { z } from 'zod';
import { KeygateError } from '../errors/index.js';

/** Parse untrusted input at the edge; a mismatch is a 400 naming the first offending field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const first = r.error.issues[0];
    const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
    throw new KeygateError('BAD_REQUEST', { message: `Invalid request body: ${where}${first?.message ?? 'invalid'}` });
  }
  return r.data;
}
