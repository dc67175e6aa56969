import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientIpResolver } from './client-ip.js';

describe('clientIpResolver', () => {
  it('answers "" instead of throwing when the socket is already gone (the client left mid-body)', () => {
    const gone = { socket: null, connection: null, headers: {} } as unknown as IncomingMessage;
    expect(clientIpResolver([])(gone)).toBe('');
    expect(clientIpResolver(['10.0.0.0/8'])(gone)).toBe('');
  });

  it('believes X-Forwarded-For only from a trusted proxy', () => {
    const via = (remote: string) =>
      ({
        socket: { remoteAddress: remote },
        connection: { remoteAddress: remote },
        headers: { 'x-forwarded-for': '203.0.113.9' },
      }) as unknown as IncomingMessage;
    expect(clientIpResolver(['10.0.0.0/8'])(via('10.1.2.3'))).toBe('203.0.113.9');
    expect(clientIpResolver(['10.0.0.0/8'])(via('198.51.100.7'))).toBe('198.51.100.7');
    expect(clientIpResolver([])(via('10.1.2.3'))).toBe('10.1.2.3');
  });
});
