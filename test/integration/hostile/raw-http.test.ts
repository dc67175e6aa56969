/**
 * The listener against hostile HTTP/1.1, byte for byte over a raw socket: request smuggling
 * (CL.TE, TE.CL, obfuscated Transfer-Encoding, duplicate Content-Length), bare CR/LF/NUL,
 * absolute-form targets and conflicting Host headers, oversized request lines, headers and
 * cookies, `Upgrade: h2c`. Each is refused with the contract's JSON error (or, where Node's
 * parser answers first, its status); the connection is closed where the framing is ambiguous;
 * nothing reaches the upstream. Then slow clients: trickled headers and bodies are cut off by
 * the header and request timeouts while other clients are served.
 */
import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream, type TestGateway } from '../../helpers/index.js';

let up: RunningUpstream;
let g: TestGateway;
let port: number;
let seen: string[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  g = await startGateway({
    limits: { headersTimeout: '1s', requestTimeout: '2s', keepAliveTimeout: '1500ms' },
    upstreams: { ws: { url: up.url, credential: { type: 'none' } } },
  });
  port = Number(new URL(g.url).port);
});

afterAll(async () => {
  await g?.close();
  await up?.close();
});

beforeEach(() => {
  seen = [];
});

const ID = 'x-test-identity: test-identity-secret:alice\r\n';

/** Write raw bytes; the whole answer, and whether the server closed the connection. */
function raw(text: string | Buffer, waitMs = 3_000): Promise<{ out: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    let closed = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ out, closed });
    }, waitMs);
    s.on('data', (d) => {
      out += d.toString('latin1');
    });
    s.on('end', () => {
      closed = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ out, closed });
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const status = (out: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
const errorCode = (out: string) => /"error_code":"([A-Z_]+)"/.exec(out)?.[1];

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n';

/** [name, request bytes, expected status, expected error code] — framing is ambiguous in all: closed. */
const AMBIGUOUS: [string, string, number, string][] = [
  [
    'CL.TE',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'TE.CL',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'obfuscated TE: xchunked',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'obfuscated TE: chunked, identity',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'obfuscated TE: space before the colon',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'obfuscated TE: two headers',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'duplicate Content-Length, different values',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'duplicate Content-Length, one header',
    `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Content-Length: 4, 40\r\n\r\nabcd${SMUGGLED}`,
    400,
    'BAD_REQUEST',
  ],
  [
    'bare CR in a header value',
    `GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-A: b\rX-Forwarded-User: m\r\n\r\n`,
    400,
    'BAD_REQUEST',
  ],
  [
    'bare LF ending a header line',
    `GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-A: b\nX-Forwarded-User: m\r\n\r\n`,
    400,
    'BAD_REQUEST',
  ],
  ['NUL in a header value', `GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-A: b\u0000c\r\n\r\n`, 400, 'BAD_REQUEST'],
  ['NUL in the request target', `GET /x\u0000y HTTP/1.1\r\nHost: a\r\n${ID}\r\n`, 400, 'BAD_REQUEST'],
  ['a space in the request target', `GET /x y HTTP/1.1\r\nHost: a\r\n${ID}\r\n`, 400, 'BAD_REQUEST'],
  ['a header without a colon', `GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-A b\r\n\r\n`, 400, 'BAD_REQUEST'],
  [
    'obs-fold (a continuation line)',
    `GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-A: b\r\n X-Forwarded-User: m\r\n\r\n`,
    400,
    'BAD_REQUEST',
  ],
  ['two Host headers', `GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n${ID}\r\n`, 400, 'BAD_REQUEST'],
  ['no Host in HTTP/1.1', `GET /x HTTP/1.1\r\n${ID}\r\n`, 400, 'BAD_REQUEST'],
  ['absolute-form target', `GET http://evil.example/x HTTP/1.1\r\nHost: a\r\n${ID}\r\n`, 400, 'BAD_REQUEST'],
  [
    'authority-form target',
    `CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n${ID}\r\n`,
    400,
    'BAD_REQUEST',
  ],
  ['asterisk-form target', `OPTIONS * HTTP/1.1\r\nHost: a\r\n${ID}\r\n`, 400, 'BAD_REQUEST'],
  [
    'Upgrade: h2c',
    `GET /x HTTP/1.1\r\nHost: a\r\n${ID}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    400,
    'BAD_REQUEST',
  ],
  [
    'Upgrade: websocket',
    `GET /x HTTP/1.1\r\nHost: a\r\n${ID}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    400,
    'BAD_REQUEST',
  ],
  ['an HTTP/2 preface on the HTTP/1.1 port', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'BAD_REQUEST'],
];

describe('ambiguous or invalid framing', () => {
  it.each(AMBIGUOUS)('%s: refused, connection closed, nothing forwarded', async (_name, bytes, code, errorName) => {
    const r = await raw(bytes);
    expect(status(r.out), r.out.slice(0, 200)).toBe(code);
    expect(errorCode(r.out)).toBe(errorName);
    expect(r.closed).toBe(true);
    // Exactly one response: the smuggled request was never answered (or forwarded).
    expect(r.out.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    expect(seen).toEqual([]);
  });
});

describe('oversized requests', () => {
  it.each([
    ['request line', `GET /x?${'a'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n${ID}\r\n`],
    ['one header', `GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['cookies', `GET /x HTTP/1.1\r\nHost: a\r\n${ID}Cookie: ${'c=1; '.repeat(4_000)}\r\n\r\n`],
    ['many headers', `GET /x HTTP/1.1\r\nHost: a\r\n${ID}${'X-N: 1\r\n'.repeat(3_000)}\r\n`],
  ])('%s: 431 JSON, closed, nothing forwarded', async (_name, bytes) => {
    const r = await raw(bytes);
    expect(status(r.out)).toBe(431);
    expect(errorCode(r.out)).toBe('HEADERS_TOO_LARGE');
    expect(r.closed).toBe(true);
    expect(seen).toEqual([]);
  });
});

describe('well-formed edge cases still work', () => {
  it('a chunked body with chunk extensions and a trailer is forwarded as one request', async () => {
    const r = await raw(
      `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4;ext=1\r\nabcd\r\n0\r\nX-Trailer: t\r\n\r\n`,
    );
    expect(status(r.out)).toBe(200);
    expect(seen).toEqual(['POST /x']);
  });

  it('keep-alive: two pipelined requests get two answers in order', async () => {
    const r = await raw(
      `GET /a HTTP/1.1\r\nHost: a\r\n${ID}\r\nGET /b HTTP/1.1\r\nHost: a\r\n${ID}Connection: close\r\n\r\n`,
    );
    expect(r.out.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(seen).toEqual(['GET /a', 'GET /b']);
  });
});

describe('slow clients', () => {
  /** Open a connection and send `text` one byte every `everyMs`; resolves with what came back. */
  function trickle(text: string, everyMs: number, maxMs: number): Promise<{ out: string; closedAfterMs: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const s = connect(port, '127.0.0.1');
      let out = '';
      let i = 0;
      const timer = setInterval(() => {
        if (i < text.length && s.writable) s.write(text[i++] as string);
      }, everyMs);
      const done = () => {
        clearInterval(timer);
        clearTimeout(cap);
        s.destroy();
        resolve({ out, closedAfterMs: Date.now() - started });
      };
      const cap = setTimeout(done, maxMs);
      s.on('data', (d) => {
        out += d.toString('latin1');
      });
      s.on('close', done);
      s.on('error', () => undefined);
    });
  }

  it('slowloris headers are cut off by the header timeout (408), while other clients are served', async () => {
    const slow = Array.from({ length: 20 }, () =>
      trickle(`GET /x HTTP/1.1\r\nHost: a\r\n${ID}X-Slow: ${'s'.repeat(200)}\r\n\r\n`, 100, 8_000),
    );
    // Meanwhile, ordinary requests go through at once.
    for (let i = 0; i < 5; i++) {
      const r = await request(`${g.url}/ok-${i}`, { headers: asUser() });
      await r.body.text();
      expect(r.statusCode).toBe(200);
    }
    for (const r of await Promise.all(slow)) {
      expect(status(r.out)).toBe(408);
      expect(errorCode(r.out)).toBe('REQUEST_TIMEOUT');
      // The header timeout is 1 s, checked every second by the server.
      expect(r.closedAfterMs).toBeLessThan(4_000);
    }
    expect(seen.filter((s) => s === 'GET /x')).toEqual([]);
  });

  it('an idle keep-alive connection is closed after limits.keepAliveTimeout, and told so', async () => {
    const r = await trickle(`GET /x HTTP/1.1\r\nHost: a\r\n${ID}\r\n`, 1, 10_000);
    expect(status(r.out)).toBe(200);
    expect(r.out).toMatch(/\r\nkeep-alive: timeout=1\r\n/i);
    // 1.5 s after the answer (the server checks connections every second), not 30 s.
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(1_400);
    expect(r.closedAfterMs).toBeLessThan(4_000);
  });

  it('a trickled body is cut off by the request timeout', async () => {
    const body = 'x'.repeat(100);
    const r = await trickle(
      `POST /x HTTP/1.1\r\nHost: a\r\n${ID}Content-Length: ${body.length}\r\n\r\n${body}`,
      50,
      10_000,
    );
    expect(r.closedAfterMs).toBeLessThan(5_000);
    // Whatever was answered, the upstream never saw the whole request complete.
    expect(r.out === '' || status(r.out) >= 400).toBe(true);
  });
});
