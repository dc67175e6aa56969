/**
 * The floor of what Node can do: node:http in, an undici keep-alive Pool out, bodies piped,
 * hop-by-hop headers dropped and nothing else. Keygate is measured against this.
 */
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

const pool = new Pool(process.env.BENCH_UPSTREAM_URL as string, { connections: 128, keepAliveTimeout: 4_000 });
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool
    .request({
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: strip(req.headers),
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
