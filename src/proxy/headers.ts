/**
 * Header hygiene at the proxy boundary (ASVS 4.1.3: intermediary-set headers cannot be
 * overridden by the client). Requests: hop-by-hop headers, the client's credentials,
 * Keygate's own cookies and every identity header a client could forge are removed before
 * the gateway adds its own. Names are compared lower-cased with `_` folded to `-`, because
 * some upstream stacks (CGI/WSGI) read `X-Forwarded_User` as `X-Forwarded-User`.
 */

/** RFC 9110 §7.6.1 connection-specific fields, plus legacy ones proxies must not forward. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Set by the gateway itself or forgeable identity claims: never taken from the client. */
const REQUEST_DROP = new Set([
  'host',
  'authorization',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-forwarded-preferred-username',
  'x-forwarded-access-token',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'remote-user',
  'x-remote-user',
  'dpop',
  // undici refuses to send `Expect`; Node's server already answered any 100-continue.
  'expect',
]);

const DROP_PREFIXES = ['x-keygate-', 'x-auth-request-'];

/** Cookie names Keygate sets; they never reach an upstream. */
export function isKeygateCookie(name: string): boolean {
  const n = name.toLowerCase();
  return n.startsWith('keygate') || n.startsWith('__host-keygate') || n.startsWith('__secure-keygate');
}

function canonical(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length === 10 && (raw[i] as string).toLowerCase() === 'connection') {
      out ??= new Set();
      for (const t of (raw[i + 1] as string).split(',')) out.add(canonical(t.trim()));
    }
  }
  return out;
}

function stripKeygateCookies(value: string): string | undefined {
  if (!value.toLowerCase().includes('keygate')) return value;
  const kept = value
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c !== '' && !isKeygateCookie(c.split('=', 1)[0] ?? ''));
  return kept.length === 0 ? undefined : kept.join('; ');
}

export function isDroppedRequestHeader(name: string): boolean {
  const n = canonical(name);
  if (HOP_BY_HOP.has(n) || REQUEST_DROP.has(n)) return true;
  for (const p of DROP_PREFIXES) if (n.startsWith(p)) return true;
  return false;
}

/**
 * Build the upstream request headers as a flat [name, value, …] list from the client's raw
 * headers. The caller appends the gateway's own (credential, assertion, request id, forwarding).
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[]): string[] {
  const conn = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    if (isDroppedRequestHeader(name)) continue;
    const n = canonical(name);
    if (conn?.has(n)) continue;
    if (n === 'cookie') {
      const v = stripKeygateCookies(value);
      if (v !== undefined) out.push(name, v);
      continue;
    }
    out.push(name, value);
  }
  return out;
}

/**
 * Response headers from the upstream, for the client: hop-by-hop removed, a Location that
 * points at the upstream's own origin rewritten to the public origin (the client never learns
 * the upstream address and never follows a redirect around the gateway).
 */
export function clientResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  upstreamOrigin: string,
  publicOrigin: string,
): string[] {
  const conn = headers.connection;
  const connSet =
    conn === undefined
      ? undefined
      : new Set((Array.isArray(conn) ? conn.join(',') : conn).split(',').map((t) => t.trim().toLowerCase()));
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || connSet?.has(name)) continue;
    if (name === 'location' && typeof value === 'string' && value.startsWith(upstreamOrigin)) {
      const rest = value.slice(upstreamOrigin.length);
      if (rest === '' || rest.startsWith('/') || rest.startsWith('?')) {
        out.push(name, publicOrigin + rest);
        continue;
      }
    }
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}
