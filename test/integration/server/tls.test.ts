/**
 * Keygate terminating TLS itself, and picking up a renewed certificate without a restart.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream } from '../../helpers/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-tls-'));
let up: RunningUpstream;

/** A self-signed P-256 certificate for localhost, written as <name>.crt / <name>.key. */
function makeCert(name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=localhost/O=${name}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

function servedOrganization(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const o = s.getPeerCertificate().subject.O;
      s.end();
      resolve(Array.isArray(o) ? o.join(',') : (o ?? ''));
    });
    s.on('error', reject);
  });
}

beforeAll(async () => {
  up = await startUpstream((_req, res) => res.end('over tls'));
});

afterAll(async () => {
  await up?.close();
});

describe('TLS termination', () => {
  it('serves HTTPS with the configured certificate and reloads it when the files change', async () => {
    const first = makeCert('first');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    renameSync(first.cert, live.cert);
    renameSync(first.key, live.key);
    process.env.TLS_TEST_TOKEN = 't';
    const g = await startGateway(
      {
        publicUrl: 'https://localhost',
        tls: { certFile: live.cert, keyFile: live.key },
        upstreams: { ws: { url: up.url, credential: { type: 'static', tokenEnv: 'TLS_TEST_TOKEN' } } },
      },
      { filePollMs: 20 },
    );
    try {
      expect(g.url.startsWith('https://')).toBe(true);
      const port = Number(new URL(g.url).port);
      const agent = new Agent({ connect: { ca: readFileSync(live.cert), servername: 'localhost' } });
      const r = await request(`${g.url}/x`, { headers: asUser(), dispatcher: agent });
      expect(r.statusCode).toBe(200);
      expect(await r.body.text()).toBe('over tls');
      await agent.close();
      expect(await servedOrganization(port)).toBe('first');

      // Renew: new key and certificate replace the old files.
      const second = makeCert('second');
      renameSync(second.key, live.key);
      renameSync(second.cert, live.cert);
      let org = '';
      for (let i = 0; i < 100 && org !== 'second'; i++) {
        await new Promise((res) => setTimeout(res, 30));
        org = await servedOrganization(port);
      }
      expect(org).toBe('second');
    } finally {
      await g.close();
    }
  });
});
