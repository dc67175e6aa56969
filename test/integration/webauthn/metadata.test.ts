/**
 * An offline FIDO Metadata Service BLOB: verified at start (signature and certificate chain,
 * by @simplewebauthn/server, against a root we make here), and models it reports revoked or
 * compromised cannot register. A BLOB that does not verify stops the gateway from starting.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importPKCS8, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../../helpers/index.js';
import { enroll, lastAuthEvent } from '../../helpers/people.js';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-mds-'));
const REVOKED = '11111111-2222-3333-4444-000000000001';
const COMPROMISED = '11111111-2222-3333-4444-000000000002';
const CERTIFIED = '11111111-2222-3333-4444-000000000003';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function derOf(pemFile: string): string {
  return readFileSync(join(dir, pemFile), 'utf8')
    .replace(/-----[A-Z ]+-----/g, '')
    .replace(/\s+/g, '');
}

/** A CA and a BLOB-signing certificate it issued. */
function makeChain(prefix: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-subj',
    `/CN=${prefix} MDS Root`,
    '-keyout',
    `${prefix}-root.key`,
    '-out',
    `${prefix}-root.crt`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl([
    'req',
    ...ec,
    '-subj',
    `/CN=${prefix} MDS Signer`,
    '-keyout',
    `${prefix}-leaf.key`,
    '-out',
    `${prefix}-leaf.csr`,
  ]);
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\n');
  openssl([
    'x509',
    '-req',
    '-in',
    `${prefix}-leaf.csr`,
    '-CA',
    `${prefix}-root.crt`,
    '-CAkey',
    `${prefix}-root.key`,
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    `${prefix}-leaf.crt`,
    '-extfile',
    'leaf.ext',
  ]);
}

/** A 1×1 PNG, as MDS entries carry their icons. */
const ICON =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

function entry(aaguid: string, description: string, status: string) {
  return {
    aaguid,
    metadataStatement: { aaguid, description, schema: 3, protocolFamily: 'fido2', icon: ICON },
    statusReports: [
      { status: 'FIDO_CERTIFIED', effectiveDate: '2025-01-01' },
      { status, effectiveDate: '2026-06-01' },
    ],
    timeOfLastStatusChange: '2026-06-01',
  };
}

async function blob(prefix: string, payloadOverride: Record<string, unknown> = {}): Promise<string> {
  const next = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  const payload = {
    legalHeader: 'test BLOB',
    no: 7,
    nextUpdate: next,
    entries: [
      entry(REVOKED, 'Revoked Key', 'REVOKED'),
      entry(COMPROMISED, 'Leaky Key', 'ATTESTATION_KEY_COMPROMISE'),
      entry(CERTIFIED, 'Good Key', 'FIDO_CERTIFIED_L2'),
    ],
    ...payloadOverride,
  };
  const key = await importPKCS8(readFileSync(join(dir, `${prefix}-leaf.key`), 'utf8'), 'ES256');
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [derOf(`${prefix}-leaf.crt`)] })
    .sign(key);
}

let g: TestGateway;

beforeAll(async () => {
  makeChain('good');
  makeChain('other');
  writeFileSync(join(dir, 'blob.jwt'), await blob('good'));
  g = await startGateway({
    webauthn: { mdsBlobFile: join(dir, 'blob.jwt'), mdsRootCertFile: join(dir, 'good-root.crt') },
  });
});

afterAll(async () => {
  await g?.close();
});

describe('FIDO metadata BLOB', () => {
  it.each([
    [REVOKED, 'revoked'],
    [COMPROMISED, 'compromised'],
  ])('a model reported %s (%s) cannot register', async (aaguid) => {
    const r = await enroll(g, `m-${aaguid.slice(-1)}@example.com`, {
      authenticator: new SoftAuthenticator(g.gw.publicOrigin, { aaguid }),
    });
    expect(r.result.status).toBe(400);
    expect(r.result.body).toMatchObject({
      error_code: 'REGISTRATION_REFUSED',
      message: 'This authenticator model has been reported revoked or compromised by the FIDO Alliance.',
    });
    expect(await lastAuthEvent(g)).toMatchObject({
      kind: 'auth.register',
      outcome: 'failure',
      reason: 'aaguid_revoked',
      aaguid,
    });
  });

  it('a certified model, and one the BLOB does not list, register', async () => {
    for (const aaguid of [CERTIFIED, '99999999-0000-0000-0000-000000000000']) {
      const r = await enroll(g, `ok-${aaguid.slice(0, 2)}@example.com`, {
        authenticator: new SoftAuthenticator(g.gw.publicOrigin, { aaguid }),
      });
      expect(r.result.status).toBe(200);
    }
  });

  it("the admin API names a person's key by the BLOB's description and shows its icon", async () => {
    const { browser: admin } = await enroll(g, 'mds-admin@example.com', {
      token: (
        await g.gw.auth.enrollment.invite(g.gw.publicOrigin, {
          email: 'mds-admin@example.com',
          roles: ['admin'],
          createdBy: 'test',
        })
      ).token,
      authenticator: new SoftAuthenticator(g.gw.publicOrigin, { aaguid: CERTIFIED }),
    });
    const id = (await g.gw.store.getUserByEmail('mds-admin@example.com'))?.id as string;
    const r = await admin.get<{ credentials: { authenticator: string; icon: string | null; kind: string }[] }>(
      `/.keygate/api/admin/v1/users/${id}`,
    );
    expect(r.status).toBe(200);
    expect(r.body.credentials[0]).toMatchObject({ authenticator: 'Good Key', icon: ICON, kind: 'unknown' });
  });

  it('a BLOB that does not verify stops the gateway from starting', async () => {
    // Signed by a certificate from another root.
    writeFileSync(join(dir, 'foreign.jwt'), await blob('other'));
    await expect(
      startGateway({
        webauthn: { mdsBlobFile: join(dir, 'foreign.jwt'), mdsRootCertFile: join(dir, 'good-root.crt') },
      }),
    ).rejects.toThrow(/did not verify/);
    // Tampered payload: a REVOKED status edited to look certified.
    const [h, p, s] = (await blob('good')).split('.') as [string, string, string];
    const edited = Buffer.from(
      Buffer.from(p, 'base64url').toString().replace('"REVOKED"', '"FIDO_CERTIFIED"'),
    ).toString('base64url');
    writeFileSync(join(dir, 'tampered.jwt'), `${h}.${edited}.${s}`);
    await expect(
      startGateway({
        webauthn: { mdsBlobFile: join(dir, 'tampered.jwt'), mdsRootCertFile: join(dir, 'good-root.crt') },
      }),
    ).rejects.toThrow(/did not verify/);
  });
});
