import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';

function names(flat: string[]): string[] {
  return flat.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

describe('upstream request headers', () => {
  const forged = [
    'X-Forwarded-User',
    'x-forwarded-user',
    'X_Forwarded_User',
    'X-FORWARDED-EMAIL',
    'X-Forwarded-Groups',
    'X-Forwarded-Access-Token',
    'X-Auth-Request-User',
    'x-auth-request-email',
    'X_Auth_Request_Groups',
    'X-Keygate-Assertion',
    'x-keygate-user',
    'X_Keygate_Principal',
    'Authorization',
    'Proxy-Authorization',
    'X-Real-IP',
    'X-Forwarded-For',
    'Forwarded',
    'X-Request-Id',
    'Remote-User',
    'DPoP',
    'Host',
  ];

  it.each(forged)('drops client-sent %s', (name) => {
    expect(names(upstreamRequestHeaders([name, 'mallory', 'accept', 'application/json']))).toEqual(['accept']);
  });

  it('drops hop-by-hop headers and those the Connection header names', () => {
    const out = upstreamRequestHeaders([
      'Connection',
      'keep-alive, X-Secret-Hop',
      'Keep-Alive',
      'timeout=5',
      'X-Secret-Hop',
      '1',
      'Transfer-Encoding',
      'chunked',
      'TE',
      'trailers',
      'Upgrade',
      'websocket',
      'Expect',
      '100-continue',
      'Content-Type',
      'application/json',
      'Content-Length',
      '12',
    ]);
    expect(names(out)).toEqual(['content-type', 'content-length']);
  });

  it("removes Keygate's cookies and keeps the others", () => {
    const out = upstreamRequestHeaders(['Cookie', 'keygate_session=abc; theme=dark; __Host-keygate=x; b=2']);
    expect(out).toEqual(['Cookie', 'theme=dark; b=2']);
    expect(upstreamRequestHeaders(['Cookie', '__Host-keygate_session=abc'])).toEqual([]);
  });

  it('keeps ordinary headers with their values and repeats', () => {
    const raw = ['Accept', 'text/event-stream', 'X-Custom', 'a', 'X-Custom', 'b', 'User-Agent', 'sdk/1'];
    expect(upstreamRequestHeaders(raw)).toEqual(raw);
  });
});

describe('client response headers', () => {
  it('drops hop-by-hop headers and rewrites Locations that point at the upstream', () => {
    const out = clientResponseHeaders(
      {
        connection: 'keep-alive, x-hop',
        'x-hop': '1',
        'keep-alive': 'timeout=4',
        'transfer-encoding': 'chunked',
        location: 'http://10.0.0.5:8080/api/2.0/x?y=1',
        'content-type': 'application/json',
        'set-cookie': ['a=1', 'b=2'],
      },
      'http://10.0.0.5:8080',
      'https://keygate.example.com',
    );
    expect(out).toEqual([
      'location',
      'https://keygate.example.com/api/2.0/x?y=1',
      'content-type',
      'application/json',
      'set-cookie',
      'a=1',
      'set-cookie',
      'b=2',
    ]);
  });

  it('does not rewrite a Location on a look-alike host', () => {
    const out = clientResponseHeaders({ location: 'http://10.0.0.5:80800/x' }, 'http://10.0.0.5:8080', 'https://kg');
    expect(out).toEqual(['location', 'http://10.0.0.5:80800/x']);
  });
});
