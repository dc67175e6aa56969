import { describe, expect, it } from 'vitest';
import { AUDIT_KINDS } from './catalogue.js';
import { fromOcsf, type OcsfEvent, toOcsf } from './ocsf.js';
import { type AuditEntry, type AuditRecord, type ChainedRecord, chainHash, GENESIS_HASH } from './record.js';

const T0 = Date.UTC(2026, 10, 28, 9, 0, 0);
const IP = '203.0.113.7';
const BROWSER = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15';
const YUBIKEY = 'ee882879-721c-4913-9775-3dfcce97072a';

/** Auth events reach the log as `fromAuthEvent` writes them: the client, no method or path. */
const browser = { method: '', path: '', ip: IP, userAgent: BROWSER };
const alice = (authEventId: string, at: number) => ({
  type: 'user' as const,
  id: 'usr_01HZX4Q7ALICE',
  authEventId,
  credentialId: 'cred_Yk5c-alice-primary',
  aaguid: YUBIKEY,
  authenticator: 'YubiKey 5 Series',
  uv: true,
  authTime: at,
});

/** A chain, in order: each record linked to the one before and hashed as the writer does. */
function chain(entries: [string, AuditEntry][]): ChainedRecord[] {
  let prevHash = GENESIS_HASH;
  return entries.map(([id, e], i) => {
    const rec: AuditRecord = { ...e, id, seq: 41 + i, prevHash };
    const { hash } = chainHash(rec);
    prevHash = hash;
    return { ...rec, hash };
  });
}

const RECORDS = chain([
  ['0b7e6a52-audit', { kind: 'audit.started', at: T0, actor: { type: 'system' }, detail: { pid: 48213 } }],
  [
    '7d3e-refresh',
    {
      kind: 'token.refreshed',
      at: T0 + 200,
      actor: {
        type: 'user',
        id: 'usr_dana',
        authEventId: 'ev-1',
        credentialId: 'cred-1',
        uv: true,
        authTime: T0 - 3_600_000,
        deviceBound: true,
      },
      request: { method: 'POST', path: '/.keygate/oauth/token', ip: '10.0.0.7' },
      outcome: 'success',
      detail: { client: 'keygate-cli', grant: 'grant-1' },
    },
  ],
  [
    '0c11-pruned',
    {
      kind: 'audit.pruned',
      at: T0 + 100,
      actor: { type: 'system' },
      detail: { through: 40, removed: 40, cutoff: T0 - 86_400_000 },
      outcome: 'success',
    },
  ],
  [
    '9a0f-scim',
    {
      kind: 'scim.change',
      at: T0 + 400,
      actor: { type: 'system', id: 'scim_tok_1', via: 'scim:okta' },
      request: { method: 'PATCH', path: '/.keygate/scim/v2/Users/usr_dana', ip: '10.0.0.7', requestId: 'r-s' },
      change: { op: 'user.update', target: 'user:usr_dana', before: { active: true }, after: { active: false } },
      outcome: 'success',
    },
  ],
  [
    '9a1f-admin',
    {
      kind: 'admin.change',
      at: T0 + 500,
      actor: { type: 'user', id: 'usr_root', email: 'root@example.com', sessionId: 'ses_1', uv: true },
      request: { method: 'POST', path: '/.keygate/api/admin/v1/service-principals', ip: '10.0.0.9', requestId: 'r-a' },
      change: {
        op: 'service_principal.create',
        target: 'service_principal:sp_airflow',
        after: { name: 'airflow', roles: ['ml-reader'], auth: 'client_secret_basic' },
      },
      outcome: 'success',
    },
  ],
  [
    '1c2d-register',
    {
      kind: 'auth.register',
      at: T0 + 1_000,
      actor: alice('ev-register-1', T0 + 1_000),
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '2d3d-idp-login',
    {
      kind: 'auth.idp_login',
      at: T0 + 59_000,
      actor: { ...alice('ev-idp-1', T0 + 59_000), via: 'idp:okta' },
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '2d3e-login',
    {
      kind: 'auth.login',
      at: T0 + 60_000,
      actor: alice('ev-login-1', T0 + 60_000),
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '3e4f-request',
    {
      kind: 'http.request',
      at: T0 + 61_000,
      actor: {
        ...alice('ev-login-1', T0 + 60_000),
        email: 'alice@example.com',
        method: 'webauthn',
        sessionId: 'sess_8f1c2a',
        deviceBound: true,
      },
      request: {
        method: 'POST',
        path: '/serving-endpoints/fraud-model/invocations',
        action: 'serving:invoke',
        resource: 'Endpoint::fraud-model',
        ip: IP,
        userAgent: 'databricks-sdk-py/0.40.0 python/3.12.4',
        requestId: 'req_5b0e9d71',
      },
      decision: { effect: 'allow', reasons: ['role:ml-invoker:0'] },
      upstream: {
        name: 'databricks',
        status: 200,
        latencyMs: 41.7,
        bytes: 1832,
        identity: { type: 'federated', subject: 'alice@example.com' },
      },
      status: 200,
    },
  ],
  [
    '4f50-step-up',
    {
      kind: 'auth.step_up',
      at: T0 + 120_000,
      actor: alice('ev-stepup-1', T0 + 120_000),
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '5061-renamed',
    {
      kind: 'auth.credential_renamed',
      at: T0 + 130_000,
      actor: alice('ev-rename-1', T0 + 130_000),
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '6172-revoked',
    {
      kind: 'auth.credential_revoked',
      at: T0 + 140_000,
      actor: { type: 'user', id: 'usr_01HZX4Q7ALICE', authEventId: 'ev-revoke-1', credentialId: 'cred_old-phone' },
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '7a01-approval',
    {
      kind: 'auth.approval',
      at: T0 + 141_000,
      actor: {
        type: 'user',
        id: 'usr_01HZX4Q7ALICE',
        authEventId: 'ev-approve-1',
        credentialId: 'cred_yubikey',
        uv: true,
        via: 'approval:apr_9f2c',
      },
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '7a02-granted',
    {
      kind: 'agent.granted',
      at: T0 + 142_000,
      actor: {
        type: 'user',
        id: 'usr_01HZX4Q7ALICE',
        authEventId: 'ev-grant-1',
        via: 'agent:copilot:dlg_1:serving:invoke',
      },
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '7a03-grant-revoked',
    {
      kind: 'agent.grant_revoked',
      at: T0 + 143_000,
      actor: { type: 'user', id: 'usr_01HZX4Q7ALICE', authEventId: 'ev-grant-2', via: 'grant:dlg_1' },
      request: browser,
      outcome: 'success',
    },
  ],
  [
    '7a04-denied',
    {
      kind: 'approval.denied',
      at: T0 + 144_000,
      actor: { type: 'user', id: 'usr_01HZX4Q7ALICE', email: 'alice@example.com' },
      detail: {
        approval: 'apr_9f2d',
        agent: 'sp_copilot',
        method: 'PUT',
        path: '/api/2.0/serving-endpoints/fraud/config',
        action: 'serving:manage',
      },
      outcome: 'success',
    },
  ],
  [
    '7283-enroll',
    {
      kind: 'auth.enrollment_issued',
      at: T0 + 150_000,
      actor: { type: 'user', id: 'usr_01HZX9BOB', authEventId: 'ev-enroll-1', authTime: T0 + 150_000 },
      request: { method: '', path: '', ip: '198.51.100.20', userAgent: 'keygate-cli/0.1.0' },
      outcome: 'success',
    },
  ],
  [
    '8394-recovery-issued',
    {
      kind: 'auth.recovery_issued',
      at: T0 + 160_000,
      actor: { type: 'user', id: 'usr_01HZX9BOB', authEventId: 'ev-recovery-1', authTime: T0 + 160_000 },
      request: { method: '', path: '', ip: '198.51.100.20', userAgent: 'keygate-cli/0.1.0' },
      outcome: 'success',
    },
  ],
  [
    '94a5-recovery-used',
    {
      kind: 'auth.recovery_used',
      at: T0 + 170_000,
      actor: {
        type: 'user',
        id: 'usr_01HZX9BOB',
        authEventId: 'ev-recovery-2',
        credentialId: 'cred_bob-new',
        aaguid: YUBIKEY,
        authenticator: 'YubiKey 5 Series',
        authTime: T0 + 170_000,
      },
      request: browser,
      outcome: 'success',
    },
  ],
  [
    'a5b6-token',
    {
      kind: 'token.issued',
      at: T0 + 180_000,
      actor: {
        type: 'service_principal',
        id: 'sp-nightly-etl',
        authEventId: 'ev-token-1',
        authTime: T0 + 180_000,
        via: 'sec_01J0',
      },
      request: { method: '', path: '', ip: '10.20.0.15', userAgent: 'python-requests/2.32.3' },
      outcome: 'success',
    },
  ],
  [
    'b6c7-refused',
    {
      kind: 'token.refused',
      at: T0 + 190_000,
      actor: {
        type: 'service_principal',
        id: 'sp-nightly-etl',
        authEventId: 'ev-token-2',
        authTime: T0 + 190_000,
        via: 'gh-actions',
      },
      request: { method: '', path: '', ip: '10.20.0.15', userAgent: 'python-requests/2.32.3' },
      outcome: 'failure',
      reason: 'federation_subject_mismatch',
    },
  ],
  [
    'c7d8-reuse',
    {
      kind: 'token.reuse_detected',
      at: T0 + 200_000,
      actor: { type: 'user', id: 'usr_01HZX4Q7ALICE', authEventId: 'ev-token-3', authTime: T0 + 200_000 },
      request: { method: '', path: '', ip: '192.0.2.99', userAgent: 'curl/8.7.1' },
      outcome: 'failure',
      reason: 'refresh_token_reused',
    },
  ],
  [
    'd8e9-revoked',
    {
      kind: 'token.revoked',
      at: T0 + 210_000,
      actor: { type: 'user', id: 'usr_01HZX4Q7ALICE', authEventId: 'ev-token-4', authTime: T0 + 210_000 },
      request: { method: '', path: '', ip: IP, userAgent: 'keygate-cli/0.1.0' },
      outcome: 'success',
    },
  ],
  [
    'e9fa-logout',
    {
      kind: 'auth.logout',
      at: T0 + 220_000,
      actor: { type: 'user', id: 'usr_01HZX4Q7ALICE', authEventId: 'ev-logout-1', authTime: T0 + 220_000 },
      request: browser,
      outcome: 'success',
    },
  ],
]);

const byKind = new Map(RECORDS.map((r) => [r.kind as string, r]));
const record = (kind: string): ChainedRecord => {
  const r = byKind.get(kind);
  if (r === undefined) throw new Error(`no fixture for ${kind}`);
  return r;
};

/** kind → [class_uid, activity_id, status_id]. */
const EXPECTED: Record<string, [number, number, number]> = {
  'http.request': [6003, 1, 1],
  'auth.register': [3001, 10, 1],
  'auth.login': [3002, 1, 1],
  'auth.idp_login': [3002, 1, 1],
  'auth.step_up': [3002, 1, 1],
  'auth.approval': [3002, 1, 1],
  'agent.granted': [3004, 1, 1],
  'agent.grant_revoked': [3004, 4, 1],
  'approval.denied': [3004, 3, 1],
  'auth.logout': [3002, 2, 1],
  'auth.credential_revoked': [3001, 11, 1],
  'auth.credential_renamed': [3001, 99, 1],
  'auth.enrollment_issued': [3001, 99, 1],
  'auth.recovery_issued': [3001, 4, 1],
  'auth.recovery_used': [3001, 4, 1],
  'token.issued': [3002, 4, 1],
  'token.refused': [3002, 4, 2],
  'token.reuse_detected': [3002, 5, 2],
  'token.refreshed': [3002, 5, 1],
  'token.revoked': [3002, 2, 1],
  'audit.started': [6002, 3, 1],
  'admin.change': [3004, 1, 1],
  'scim.change': [3004, 3, 1],
  'audit.pruned': [6002, 99, 1],
};

/** An event as it comes back from an export file. */
const viaJson = (e: unknown): unknown => JSON.parse(JSON.stringify(e));

describe('toOcsf', () => {
  it('has a fixture and an expected mapping for every catalogued kind', () => {
    const kinds = Object.keys(AUDIT_KINDS).sort();
    expect([...byKind.keys()].sort()).toEqual(kinds);
    expect(Object.keys(EXPECTED).sort()).toEqual(kinds);
  });

  it.each(Object.keys(EXPECTED))('maps %s to its class, activity and status', (kind) => {
    const r = record(kind);
    const e = toOcsf(r);
    const [classUid, activityId, statusId] = EXPECTED[kind] as [number, number, number];
    expect(e.class_uid).toBe(classUid);
    expect(e.category_uid).toBe(Math.floor(classUid / 1000));
    expect(e.activity_id).toBe(activityId);
    expect(e.type_uid).toBe(classUid * 100 + activityId);
    expect(e.status_id).toBe(statusId);
    expect(e.status).toBe(statusId === 1 ? 'Success' : 'Failure');
    expect(e.time).toBe(r.at);
    expect(e.metadata).toMatchObject({
      version: '1.4.0',
      product: { name: 'Keygate', vendor_name: 'Keygate' },
      uid: r.id,
      log_name: 'keygate-audit',
      sequence: r.seq,
      event_code: kind,
    });
    if (r.actor.id !== undefined) expect(e.actor.user?.uid).toBe(r.actor.id);
    if (r.request !== undefined) expect(e.src_endpoint).toEqual({ ip: r.request.ip });
    expect(e.unmapped.keygate).toEqual(r);
  });

  it.each(Object.keys(EXPECTED))('%s comes back from fromOcsf deep-equal, also through JSON', (kind) => {
    const r = record(kind);
    expect(fromOcsf(toOcsf(r))).toEqual(r);
    expect(fromOcsf(viaJson(toOcsf(r)))).toStrictEqual(viaJson(r));
  });

  it('maps a proxied request to API Activity with its HTTP, API, resource and policy details', () => {
    const r = record('http.request');
    const e = toOcsf(r);
    expect(e).toMatchObject({
      class_name: 'API Activity',
      activity_name: 'Create',
      type_name: 'API Activity: Create',
      severity_id: 1,
      status_code: '200',
      actor: {
        user: { uid: 'usr_01HZX4Q7ALICE', email_addr: 'alice@example.com', type_id: 1, type: 'User' },
        session: { uid: 'sess_8f1c2a', created_time: T0 + 60_000, is_mfa: true },
        authorizations: [{ decision: 'allow', policy: { uid: 'role:ml-invoker:0' } }],
      },
      src_endpoint: { ip: IP },
      http_request: {
        http_method: 'POST',
        url: { path: '/serving-endpoints/fraud-model/invocations' },
        user_agent: 'databricks-sdk-py/0.40.0 python/3.12.4',
        uid: 'req_5b0e9d71',
      },
      http_response: { code: 200, latency: 42, length: 1832 },
      api: {
        operation: 'serving:invoke',
        request: { uid: 'req_5b0e9d71' },
        response: { code: 200 },
        service: { name: 'databricks' },
      },
      resources: [{ type: 'Endpoint', uid: 'fraud-model' }],
      metadata: { correlation_uid: 'ev-login-1' },
    });
    expect(e.user).toBeUndefined();
  });

  it('maps a refused request as a failure with the decision reasons', () => {
    const r: ChainedRecord = {
      ...record('http.request'),
      request: { method: 'GET', path: '/api/2.0/secrets/list', action: 'secrets:read', ip: IP, requestId: 'req_77' },
      decision: { effect: 'deny', reasons: ['default-deny'] },
      status: 403,
    };
    delete r.upstream;
    const e = toOcsf(r);
    expect(e).toMatchObject({ class_uid: 6003, activity_id: 2, status_id: 2, severity_id: 2 });
    expect(e.status_detail).toBe('default-deny');
    expect(e.http_response).toEqual({ code: 403 });
    expect(e.actor.authorizations).toEqual([{ decision: 'deny', policy: { uid: 'default-deny' } }]);
  });

  it('reads the action before the method: a POST listing is a read', () => {
    const base = record('http.request');
    const r = { ...base, request: { ...base.request!, method: 'POST', action: 'jobs:read' } } as ChainedRecord;
    expect(toOcsf(r).activity_id).toBe(2);
    const del = { ...base, request: { ...base.request!, method: 'DELETE', action: 'jobs:manage' } } as ChainedRecord;
    expect(toOcsf(del).activity_id).toBe(4);
  });

  it('maps a login to Authentication with the subject, WebAuthn and MFA', () => {
    const e = toOcsf(record('auth.login'));
    expect(e).toMatchObject({
      class_name: 'Authentication',
      activity_name: 'Logon',
      user: { uid: 'usr_01HZX4Q7ALICE', type_id: 1, credential_uid: 'cred_Yk5c-alice-primary' },
      service: { name: 'Keygate' },
      auth_protocol_id: 99,
      auth_protocol: 'WebAuthn',
      is_mfa: true,
      http_request: { user_agent: BROWSER },
    });
    // Auth events carry no method or path: none is invented.
    expect(e.http_request?.http_method).toBeUndefined();
    expect(e.http_request?.url).toBeUndefined();
    expect(e.http_response).toBeUndefined();
  });

  it('maps a failed anonymous login as a failure by an unknown user', () => {
    const r: ChainedRecord = {
      ...record('auth.login'),
      actor: { type: 'anonymous', authEventId: 'ev-login-x', credentialId: 'cred_unknown', authTime: T0 },
      outcome: 'failure',
      reason: 'credential_not_found',
    };
    const e = toOcsf(r);
    expect(e).toMatchObject({ class_uid: 3002, activity_id: 1, status_id: 2, severity_id: 2 });
    expect(e.status_detail).toBe('credential_not_found');
    expect(e.user).toEqual({ type_id: 0, type: 'Unknown', credential_uid: 'cred_unknown' });
    expect(fromOcsf(viaJson(e))).toEqual(r);
  });

  it('maps tokens to OAuth 2.0 ticket activities, a reused refresh token as high severity', () => {
    const issued = toOcsf(record('token.issued'));
    expect(issued).toMatchObject({
      activity_name: 'Service Ticket Request',
      auth_protocol_id: 6,
      auth_protocol: 'OAUTH 2.0',
      user: { uid: 'sp-nightly-etl', type_id: 99, type: 'service_principal' },
    });
    const reuse = toOcsf(record('token.reuse_detected'));
    expect(reuse).toMatchObject({ severity_id: 4, severity: 'High', status_detail: 'refresh_token_reused' });
  });

  it('maps the log starting to Application Lifecycle: Start by the system', () => {
    const e = toOcsf(record('audit.started'));
    expect(e).toMatchObject({
      class_name: 'Application Lifecycle',
      activity_name: 'Start',
      app: { name: 'Keygate', vendor_name: 'Keygate' },
      actor: { user: { type_id: 3, type: 'System' } },
    });
    expect(e.src_endpoint).toBeUndefined();
  });

  it('maps a kind it does not know to API Activity: Other, with the kind as the activity name', () => {
    const r = { ...record('http.request'), kind: 'admin.user_disabled' } as unknown as ChainedRecord;
    const e = toOcsf(r);
    expect(e).toMatchObject({
      class_uid: 6003,
      activity_id: 99,
      type_uid: 600399,
      activity_name: 'admin.user_disabled',
    });
    expect(e.metadata.event_code).toBe('admin.user_disabled');
    expect(e.unmapped.keygate.kind).toBe('admin.user_disabled');
  });

  it('adds nothing the record does not hold, beyond OCSF vocabulary', () => {
    // Members whose values are OCSF's words (captions, versions, the product), not data.
    const vocabulary = new Set([
      'class_name',
      'category_name',
      'activity_name',
      'type_name',
      'severity',
      'status',
      'auth_protocol',
      'type',
      'version',
      'name',
      'vendor_name',
      'log_name',
    ]);
    for (const r of RECORDS) {
      const known = new Set<string>();
      const collect = (v: unknown): void => {
        if (typeof v === 'string') for (const part of [v, ...v.split('::')]) known.add(part);
        else if (typeof v === 'number') known.add(String(v));
        else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) collect(x);
      };
      collect(r);
      const { unmapped: _record, ...mapped } = toOcsf(r);
      const check = (v: unknown, key: string): void => {
        if (typeof v === 'string' && !vocabulary.has(key)) {
          for (const part of key === 'status_detail' ? v.split(', ') : [v])
            expect(known, `${r.kind}: ${key}`).toContain(part);
        } else if (v !== null && typeof v === 'object') {
          for (const [k, x] of Object.entries(v)) check(x, Array.isArray(v) ? key : k);
        }
      };
      check(mapped, '');
    }
  });

  it('copies the record: changing the event leaves the record alone', () => {
    const r = record('http.request');
    const e = toOcsf(r);
    e.unmapped.keygate.actor.id = 'someone-else';
    expect(r.actor.id).toBe('usr_01HZX4Q7ALICE');
  });
});

describe('an OCSF export', () => {
  const lines = RECORDS.map((r) => JSON.stringify(toOcsf(r)));

  /** The chain walk `keygate audit verify` does, on records read back from OCSF lines. */
  function firstBreak(ls: string[]): number | null {
    let prev = GENESIS_HASH;
    for (const line of ls) {
      const r = fromOcsf(JSON.parse(line));
      if (r.prevHash !== prev || chainHash(r).hash !== r.hash) return r.seq;
      prev = r.hash;
    }
    return null;
  }

  it('is one JSON object a line, and the hash chain re-checks from it alone', () => {
    for (const line of lines) expect(line).not.toContain('\n');
    expect(firstBreak(lines)).toBeNull();
  });

  it('shows a record changed inside an event', () => {
    const e = JSON.parse(lines[3] as string) as OcsfEvent;
    e.unmapped.keygate.actor.id = 'usr_mallory';
    const tampered = lines.map((l, i) => (i === 3 ? JSON.stringify(e) : l));
    expect(firstBreak(tampered)).toBe(RECORDS[3]?.seq);
  });

  it('shows a record removed', () => {
    expect(firstBreak(lines.filter((_, i) => i !== 5))).toBe(RECORDS[6]?.seq);
  });
});

describe('fromOcsf refuses', () => {
  const good = () => viaJson(toOcsf(record('http.request'))) as Record<string, unknown> & OcsfEvent;

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a number', 42],
    ['a string', '{"class_uid":6003}'],
    ['an array', [toOcsf(record('http.request'))]],
    ['an empty object', {}],
  ])('%s', (_what, value) => {
    expect(() => fromOcsf(value)).toThrow(/^not a Keygate OCSF event: /);
  });

  it('an event without unmapped.keygate', () => {
    const e = good();
    e.unmapped = {} as OcsfEvent['unmapped'];
    expect(() => fromOcsf(e)).toThrow(/not a Keygate OCSF event: unmapped\.keygate: /);
    const { unmapped: _gone, ...noUnmapped } = good();
    expect(() => fromOcsf(noUnmapped)).toThrow(/unmapped: /);
  });

  it('a record whose seq is not an integer', () => {
    const e = good();
    (e.unmapped.keygate as unknown as Record<string, unknown>)['seq'] = '44';
    expect(() => fromOcsf(e)).toThrow(/unmapped\.keygate\.seq: .*number/);
    e.unmapped.keygate.seq = 44.5;
    expect(() => fromOcsf(e)).toThrow(/unmapped\.keygate\.seq: /);
  });

  it('a record with a member a record does not have', () => {
    const e = good();
    (e.unmapped.keygate.actor as unknown as Record<string, unknown>)['password'] = 'hunter2';
    expect(() => fromOcsf(e)).toThrow(/unmapped\.keygate\.actor: .*password/);
  });

  it('a record missing a member, or of an uncatalogued kind', () => {
    const e = good();
    delete (e.unmapped.keygate as Partial<ChainedRecord>).hash;
    expect(() => fromOcsf(e)).toThrow(/unmapped\.keygate\.hash: /);
    const k = good();
    (k.unmapped.keygate as unknown as Record<string, unknown>)['kind'] = 'admin.user_disabled';
    expect(() => fromOcsf(k)).toThrow(/unmapped\.keygate\.kind: not a catalogued audit kind/);
  });

  it('a malformed hash', () => {
    const e = good();
    e.unmapped.keygate.prevHash = 'abc';
    expect(() => fromOcsf(e)).toThrow(/unmapped\.keygate\.prevHash: expected 64 lowercase hex digits/);
  });

  it("another product's event", () => {
    const e = good();
    e.metadata = { ...e.metadata, product: { name: 'Okta', vendor_name: 'Okta' } as never };
    expect(() => fromOcsf(e)).toThrow(/metadata\.product\.name: /);
  });

  it('an event whose id, sequence or time disagree with its record', () => {
    const e = good();
    e.metadata.sequence = 7;
    expect(() => fromOcsf(e)).toThrow(/disagree with the record/);
    const t = good();
    t.time += 1;
    expect(() => fromOcsf(t)).toThrow(/disagree with the record/);
  });

  it('but accepts members a SIEM added to the envelope', () => {
    const e = {
      ...good(),
      enrichments: [{ name: 'geo', value: 'NL' }],
      metadata: { ...good().metadata, logged_time: T0 },
    };
    expect(fromOcsf(e)).toEqual(record('http.request'));
  });
});
