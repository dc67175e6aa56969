/**
 * `keygate config check` for databricks-federation: it prints exactly what to enter in the
 * workspace's federation policies, and `--probe` performs one real exchange against the
 * simulator, signed with the key the running gateway publishes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ALICE } from '../../../sim/index.js';
import { configCheck } from '../../../src/cli/commands/config-check.js';
import type { Output } from '../../../src/cli/output.js';
import { runCli } from '../../helpers/cli.js';
import { type FederationSetup, KEYGATE_SP, startFederation, WORKLOAD_SP } from '../../helpers/federation.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-fed-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

const yaml = (publicUrl: string, upstreamUrl: string, extra = '') =>
  `publicUrl: ${publicUrl}
dataDir: ${dir}
store: { path: ${join(dir, 'keygate.db')} }
upstreams:
  workspace:
    url: ${upstreamUrl}
    credential:
      type: databricks-federation
      probeUser: ${DEMO_ALICE.userName}
      servicePrincipals:
        - { keygateId: ${KEYGATE_SP}, clientId: ${WORKLOAD_SP.userName} }
${extra}`;

describe('keygate config check: what to enter in the workspace', () => {
  it('prints the account-wide and service principal policies, exactly', async () => {
    const f = join(dir, 'print.yaml');
    writeFileSync(f, yaml('https://keygate.example.com', 'https://dbc-1234.cloud.databricks.com'));
    const o = capture();
    expect(await configCheck(f, o, {})).toBe(0);
    const aud = 'https://dbc-1234.cloud.databricks.com/oidc/v1/token';
    const iss = 'https://keygate.example.com';
    expect(o.stderr).toEqual([]);
    expect(o.stdout).toEqual([
      `${f}: ok`,
      '',
      'upstreams.workspace: databricks-federation. Enter in the Databricks account (Settings > Security > Federation policies):',
      '  account-wide policy (people; the subject claim holds their email, which must be their workspace user name)',
      '  POST /api/2.0/accounts/<account id>/federationPolicies',
      `    issuer         ${iss}`,
      `    audiences      ${aud}`,
      '    subject claim  sub',
      `    {"oidc_policy":{"issuer":"${iss}","audiences":["${aud}"],"subject_claim":"sub"}}`,
      `  service principal ${WORKLOAD_SP.userName} (Keygate service principal ${KEYGATE_SP})`,
      `  POST /api/2.0/accounts/<account id>/servicePrincipals/<id of ${WORKLOAD_SP.userName}>/federationPolicies`,
      `    issuer         ${iss}`,
      `    audiences      ${aud}`,
      '    subject claim  sub',
      `    subject        ${KEYGATE_SP}`,
      `    {"oidc_policy":{"issuer":"${iss}","audiences":["${aud}"],"subject_claim":"sub","subject":"${KEYGATE_SP}"}}`,
      `  keys: leave jwks_uri and jwks_json empty; the workspace finds them through ${iss}/.well-known/openid-configuration (${iss}/.keygate/oauth/jwks), which must be reachable from it`,
    ]);
  });

  it('the keygate binary prints the same, and refuses an audience that Keygate uses for its other tokens', async () => {
    const f = join(dir, 'bin.yaml');
    writeFileSync(f, yaml('https://keygate.example.com', 'https://dbc-1234.cloud.databricks.com'));
    const r = await runCli(['config', 'check', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('    {"oidc_policy":{"issuer":"https://keygate.example.com"');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      yaml('https://keygate.example.com', 'https://dbc-1234.cloud.databricks.com').replace(
        'type: databricks-federation',
        'type: databricks-federation\n      audience: https://dbc-1234.cloud.databricks.com',
      ),
    );
    const refused = await runCli(['config', 'check', bad]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `${bad}: upstreams.workspace.credential.audience: must differ from every upstream URL`,
    );
  });
});

describe('keygate config check --probe', () => {
  let s: FederationSetup;
  let f: string;
  beforeAll(async () => {
    s = await startFederation({ storePath: join(dir, 'keygate.db') });
    f = join(dir, 'probe.yaml');
    writeFileSync(f, yaml(s.publicUrl, s.sim.url));
  });
  afterAll(() => s?.close());

  it('exchanges one token as probeUser, signed with the key the gateway publishes', async () => {
    s.sim.reset();
    const o = capture();
    expect(await configCheck(f, o, {}, { probe: true })).toBe(0);
    const kid = s.g.gw.oauth.signingKey().kid;
    expect(o.stdout.at(-1)).toBe(
      `upstreams.workspace: probe ok: the workspace exchanged a token for ${DEMO_ALICE.userName} (key ${kid})`,
    );
    expect(s.sim.tokenRequests).toEqual([
      expect.objectContaining({ ok: true, clientId: null, identity: DEMO_ALICE.userName, keyId: kid }),
    ]);
    // The token is discarded: nothing was called with it.
    expect(s.sim.requests).toEqual([]);
  });

  it("fails (exit 1) with the workspace's reason for a person it does not know", async () => {
    const o = capture();
    expect(await configCheck(f, o, {}, { probe: 'stranger@example.com' })).toBe(1);
    expect(o.stderr).toEqual([
      "upstreams.workspace: probe failed: UPSTREAM_FEDERATION_REJECTED: exchange for stranger@example.com: 400 invalid_grant: No user 'stranger@example.com' exists in this workspace.",
    ]);
  });

  it('fails when the workspace cannot be reached', async () => {
    const g = join(dir, 'unreachable.yaml');
    writeFileSync(g, yaml(s.publicUrl, 'http://127.0.0.1:9'));
    const o = capture();
    expect(await configCheck(g, o, {}, { probe: true })).toBe(1);
    expect(o.stderr[0]).toMatch(
      /^upstreams\.workspace: probe failed: UPSTREAM_CREDENTIAL_UNAVAILABLE: token exchange at http:\/\/127\.0\.0\.1:9\/oidc\/v1\/token failed: /,
    );
  });
});
