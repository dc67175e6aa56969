/**
 * Request-target normalization, done once at the edge (DESIGN §2). The result is what both
 * routing and the upstream see, so the two can never disagree. Requests whose meaning depends
 * on who decodes them are refused rather than guessed at.
 */
import { KeygateError } from '../errors/index.js';

export interface NormalizedTarget {
  /** Normalized path, always starting with '/'. */
  path: string;
  /** The query string including '?', or ''. */
  query: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function refuse(detail: string): KeygateError {
  return new KeygateError('BAD_REQUEST', { message: 'The request path is not acceptable.', detail });
}

/** Fast path: a path with nothing to normalize is returned as is. */
function isPlain(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    // '%', '\\', NUL, control characters and non-ASCII need the slow path
    if (c === 37 || c === 92 || c < 33 || c > 126) return false;
    // '/' followed by '/' or '.' may be a duplicate slash or a dot segment
    if (c === 47 && i + 1 < p.length) {
      const n = p.charCodeAt(i + 1);
      if (n === 47 || n === 46) return false;
    }
  }
  return true;
}

export function normalizeTarget(target: string): NormalizedTarget {
  // RFC 9112 §3.2: only origin-form is accepted for proxied requests.
  if (target.length === 0 || target.charCodeAt(0) !== 47) throw refuse('request-target is not origin-form');
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  if (query.includes('#')) throw refuse('fragment in request-target');
  if (isPlain(rawPath)) return { path: rawPath, query };

  // 1. Percent-decoding of unreserved characters only (RFC 3986 §6.2.2.2); encoded
  //    '/', '\', NUL and '%' (double encoding) change meaning between decoders: refuse.
  //    The fully decoded bytes must be valid UTF-8: overlong forms such as %C0%AE ('.')
  //    are how decoders that disagree get tricked into a dot segment.
  let decoded = '';
  const bytes: number[] = [];
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i] as string;
    const code = ch.charCodeAt(0);
    if (code === 92) throw refuse('backslash in path');
    if (code < 33 || code === 127) throw refuse('control character or space in path');
    if (code > 126) throw refuse('raw non-ASCII byte in path');
    if (ch !== '%') {
      decoded += ch;
      bytes.push(code);
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw refuse('malformed percent-encoding');
    const byte = Number.parseInt(hex, 16);
    bytes.push(byte);
    const c = String.fromCharCode(byte);
    if (byte === 0x2f || byte === 0x5c || byte === 0x00 || byte === 0x25) {
      throw refuse(`ambiguous percent-encoding %${hex}`);
    }
    decoded += UNRESERVED.test(c) ? c : `%${hex.toUpperCase()}`;
    i += 2;
  }
  if (bytes.some((b) => b >= 0x80)) {
    try {
      UTF8.decode(new Uint8Array(bytes));
    } catch {
      throw refuse('invalid UTF-8 in percent-encoding');
    }
  }

  // 2. Duplicate slashes collapse; 3. dot segments are removed (RFC 3986 §5.2.4).
  const segments = decoded.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    const last = i === segments.length - 1;
    // `..;x` and `.;x` are dot segments to an upstream that drops path parameters (as the
    // classifier does): refuse rather than keep them here and have the upstream resolve them.
    const semi = s.indexOf(';');
    if (semi !== -1 && (s.slice(0, semi) === '.' || s.slice(0, semi) === '..')) {
      throw refuse('path parameters on a dot segment');
    }
    if (s === '.' || s === '') {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      if (out.length === 0 || (out.length === 1 && out[0] === '')) throw refuse('dot segment above the root');
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return { path: `/${out.join('/')}`, query };
}
