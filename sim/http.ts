// Small HTTP plumbing: the route table, the parsed request handed to handlers, replies, and
// helpers that read typed fields out of untrusted JSON (each failure is a 400, never a 500).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Caller } from './auth.js';
import { ApiError, invalidParam } from './errors.js';

export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export type Json = Record<string, unknown>;

export interface BaseRequest {
  method: string;
  path: string;
  /** Decoded `{name}` segments of the route template. */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /** The body as a JSON object; `{}` when empty. Throws 400 MALFORMED_REQUEST otherwise. */
  json(): Json;
  /** Query parameters merged with the JSON body (body wins): GET/DELETE calls send either. */
  input(): Json;
}

export interface ApiRequest extends BaseRequest {
  caller: Caller;
}

export interface JsonReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface StreamSink {
  /** Writes one chunk immediately (no buffering). */
  write(chunk: string): void;
  /** True once the client went away or the server is closing. */
  readonly closed: boolean;
}

export interface StreamReply {
  status: number;
  headers: Record<string, string>;
  stream(out: StreamSink): Promise<void>;
}

export type Reply = JsonReply | StreamReply;

export interface Route<R extends BaseRequest = ApiRequest> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Template such as `/api/2.0/serving-endpoints/{name}`. */
  path: string;
  handle(req: R): Reply | Promise<Reply>;
}

export const ok = (body: unknown, headers?: Record<string, string>): JsonReply =>
  headers ? { status: 200, body, headers } : { status: 200, body };

export function isStream(reply: Reply): reply is StreamReply {
  return 'stream' in reply;
}

interface Compiled<R extends BaseRequest> {
  route: Route<R>;
  pattern: RegExp;
  names: string[];
}

/** Matches a method and path against route templates; `{x}` captures one path segment. */
export class Router<R extends BaseRequest> {
  private readonly compiled: Compiled<R>[];

  constructor(routes: Route<R>[]) {
    this.compiled = routes.map((route) => {
      const names: string[] = [];
      const source = route.path
        .split('/')
        .map((seg) => {
          const m = /^\{(\w+)\}$/.exec(seg);
          if (!m?.[1]) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          names.push(m[1]);
          return '([^/]+)';
        })
        .join('/');
      return { route, pattern: new RegExp(`^${source}$`), names };
    });
  }

  match(method: string, path: string): { route: Route<R>; params: Record<string, string> } | null {
    for (const c of this.compiled) {
      if (c.route.method !== method) continue;
      const m = c.pattern.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      let valid = true;
      c.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(m[i + 1] ?? '');
        } catch {
          valid = false;
        }
      });
      if (valid) return { route: c.route, params };
    }
    return null;
  }
}

/** Reads the whole body, refusing more than MAX_BODY_BYTES (413) before buffering it. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

function tooLarge(): ApiError {
  return new ApiError(413, 'BAD_REQUEST', `Request body exceeds ${MAX_BODY_BYTES} bytes.`, { connection: 'close' });
}

export function parseJsonObject(raw: Buffer): Json {
  if (raw.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(400, 'MALFORMED_REQUEST', 'Malformed JSON in request body.');
  }
  if (!isObject(value)) throw new ApiError(400, 'MALFORMED_REQUEST', 'Request body must be a JSON object.');
  return value;
}

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// --- typed field readers over untrusted input -------------------------------------------

export function str(src: Json, key: string): string {
  const v = optStr(src, key);
  if (v === undefined || v === '') throw invalidParam(`Missing required field: ${key}`);
  return v;
}

export function optStr(src: Json, key: string): string | undefined {
  const v = src[key];
  if (v === undefined || v === null) return undefined;
  // Ids travel as numbers in some clients and strings in others.
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw invalidParam(`Field '${key}' must be a string.`);
  return v;
}

export function int(src: Json, key: string): number {
  const v = optInt(src, key);
  if (v === undefined) throw invalidParam(`Missing required field: ${key}`);
  return v;
}

/** Integers arrive as numbers in JSON bodies and as strings in query parameters. */
export function optInt(src: Json, key: string): number | undefined {
  const v = src[key];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw invalidParam(`Field '${key}' must be an integer.`);
  return n;
}

export function optNum(src: Json, key: string): number | undefined {
  const v = src[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw invalidParam(`Field '${key}' must be a number.`);
  return n;
}

export function optBool(src: Json, key: string): boolean | undefined {
  const v = src[key];
  if (v === undefined || v === null) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (typeof v !== 'boolean') throw invalidParam(`Field '${key}' must be a boolean.`);
  return v;
}

export function optArr(src: Json, key: string): unknown[] | undefined {
  const v = src[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalidParam(`Field '${key}' must be an array.`);
  return v;
}

export function optObj(src: Json, key: string): Json | undefined {
  const v = src[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalidParam(`Field '${key}' must be an object.`);
  return v;
}

/** `[{key, value}]` tag lists used by MLflow, serving and jobs. */
export function tagList(src: Json, key: string): { key: string; value: string }[] {
  return (optArr(src, key) ?? []).map((t) => {
    if (!isObject(t)) throw invalidParam(`Entries of '${key}' must be objects.`);
    return { key: str(t, 'key'), value: optStr(t, 'value') ?? '' };
  });
}

/** Offset-based pagination: the page token is the decimal offset of the next page. */
export function paginate<T>(items: T[], src: Json, maxKey: string, defaultMax: number): { page: T[]; next?: string } {
  const max = optInt(src, maxKey) ?? defaultMax;
  if (max < 1) throw invalidParam(`Field '${maxKey}' must be positive.`);
  const token = optStr(src, 'page_token');
  const offset = token ? Number(token) : 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalidParam('Invalid page_token.');
  const page = items.slice(offset, offset + max);
  return offset + max < items.length ? { page, next: String(offset + max) } : { page };
}
