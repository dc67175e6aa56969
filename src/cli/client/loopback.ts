/**
 * The loopback redirect receiver of a native app's browser login (RFC 8252 §7.3): a one-shot
 * HTTP server on 127.0.0.1 and a random port, path /callback. Only a response carrying the
 * login's own `state` ends the wait; anything else is answered and ignored, so a stray or
 * forged request cannot end (or hijack) the login.
 */
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClientError } from './errors.js';

export interface Callback {
  /** The full redirect URL the browser was sent to (with code, state, iss or error). */
  url: URL;
  /** Answer the browser tab, once the code has been redeemed (or not). */
  respond(ok: boolean, message: string): void;
}

export interface Loopback {
  redirectUri: string;
  /** Resolves with the first callback carrying `state`; rejects after `timeoutMs`. */
  callback(state: string, timeoutMs: number): Promise<Callback>;
  close(): Promise<void>;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res: ServerResponse, status: number, title: string, message: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'referrer-policy': 'no-referrer',
    // One exchange per connection: the server can close as soon as the login is over.
    connection: 'close',
  });
  res.end(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Keygate</title>` +
      '<style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}</style></head>' +
      `<body><h1>${esc(title)}</h1><p id="message">${esc(message)}</p></body></html>`,
  );
}

export async function startLoopback(): Promise<Loopback> {
  let expected: string | undefined;
  let deliver: ((c: Callback) => void) | undefined;
  let done = false;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    if (req.method !== 'GET' || url.pathname !== '/callback') {
      page(res, 404, 'Not found', 'This address only receives the Keygate sign-in response.');
      return;
    }
    if (done) {
      page(res, 409, 'Already signed in', 'This sign-in has finished. You can close this tab.');
      return;
    }
    if (expected === undefined || url.searchParams.get('state') !== expected || deliver === undefined) {
      page(
        res,
        400,
        'Not this sign-in',
        'This response does not belong to the keygate login running in your terminal.',
      );
      return;
    }
    done = true;
    deliver({
      url,
      respond: (ok, message) =>
        page(res, ok ? 200 : 400, ok ? 'Signed in' : 'Sign-in failed', `${message} You can close this tab.`),
    });
  });
  // RFC 8252 §8.3: listen on the loopback interface only, never on all interfaces.
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    callback(state, timeoutMs) {
      expected = state;
      return new Promise<Callback>((resolve, reject) => {
        const timer = setTimeout(() => {
          deliver = undefined;
          reject(
            new ClientError(
              'LOGIN_FAILED',
              `no sign-in response within ${Math.round(timeoutMs / 60_000)} minutes: run keygate login again`,
            ),
          );
        }, timeoutMs);
        deliver = (c) => {
          clearTimeout(timer);
          resolve(c);
        };
      });
    },
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
