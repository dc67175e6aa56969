/**
 * The floor of what Node can do: node:http in, an undici keep-alive Pool out, bodies piped,
 * hop-by-hop headers dropped and nothing else. Keygate is measured against this.
 *
 * BENCH_GATEWAY_HEADERS=1 also sends what Keygate adds to every upstream request (a credential,
 * an assertion-sized JWT stand-in, a request id, X-Forwarded-*): about 800 bytes that the
 * upstream must parse too. The difference to plain bare-node is the price of the headers
 * themselves, not of Keygate's code.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { announce } from './child.js';

const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'host'];
const strip = (h: IncomingHttpHeaders) => {
  for (const name of HOP) delete h[name];
  return h;
};

const gatewayHeaders = process.env.BENCH_GATEWAY_HEADERS === '1';
const ASSERTION = 'e'.repeat(630); // the length of Keygate's assertion for the bench identity
const addGatewayHeaders = (h: IncomingHttpHeaders) => {
  h.authorization = 'Bearer bench-token';
  h['x-keygate-assertion'] = ASSERTION;
  h['x-request-id'] = randomUUID();
  h['x-forwarded-for'] = '127.0.0.1';
  h['x-forwarded-proto'] = 'http';
  h['x-forwarded-host'] = 'localhost:8443';
  return h;
};

const pool = new Pool(process.env.BENCH_UPSTREAM_URL as string, { connections: 128, keepAliveTimeout: 4_000 });
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool
    .request({
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: gatewayHeaders ? addGatewayHeaders(strip(req.headers)) : strip(req.headers),
      body: hasBody ? req : null,
    })
    .then(
      (up) => {
        res.writeHead(up.statusCode, strip(up.headers));
        up.body.pipe(res);
      },
      () => {
        res.writeHead(502).end();
      },
    );
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
announce(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
