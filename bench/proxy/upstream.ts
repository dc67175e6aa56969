/** The minimal upstream: a small fixed JSON body on every path, keep-alive. */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce } from './child.js';

const body = Buffer.from(
  JSON.stringify({ clusters: [{ cluster_id: '0123-456789-abcdefgh', cluster_name: 'bench', state: 'RUNNING' }] }),
);
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
announce(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
