import { describe, expect, it } from 'vitest';
import { DEFAULT_GATEWAY, parseGatewayUrl, resolveGateway } from './gateway-url.js';

describe('gateway URL', () => {
  it('keeps the origin only', () => {
    expect(parseGatewayUrl('https://kg.example.com/some/path?x=1')).toBe('https://kg.example.com');
    expect(parseGatewayUrl('http://localhost:8443/')).toBe('http://localhost:8443');
  });

  it.each(['http://127.0.0.1:1', 'http://[::1]:8443', 'http://localhost', 'http://app.localhost:3000'])(
    'accepts plain http to the loopback address %s',
    (u) => {
      expect(() => parseGatewayUrl(u)).not.toThrow();
    },
  );

  it.each([
    ['http://kg.example.com', /refusing plain http/],
    ['http://10.0.0.5:8443', /refusing plain http/],
    ['ftp://kg.example.com', /must be http/],
    ['https://user:pw@kg.example.com', /user name or password/],
    ['kg.example.com', /not a URL/],
  ])('refuses %s', (u, message) => {
    expect(() => parseGatewayUrl(u)).toThrow(message);
  });

  it('--gateway, then $KEYGATE_GATEWAY, then the last one used, then the default', () => {
    const env = { KEYGATE_GATEWAY: 'https://env.example.com' };
    expect(resolveGateway('https://flag.example.com', env, 'https://last.example.com')).toBe(
      'https://flag.example.com',
    );
    expect(resolveGateway(undefined, env, 'https://last.example.com')).toBe('https://env.example.com');
    expect(resolveGateway(undefined, {}, 'https://last.example.com')).toBe('https://last.example.com');
    expect(resolveGateway(undefined, { KEYGATE_GATEWAY: '' }, undefined)).toBe(DEFAULT_GATEWAY);
  });
});
