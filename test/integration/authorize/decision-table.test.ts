/**
 * The decision table (test/vectors/decisions.json), run twice per row: once against the
 * classifier and the Authorizer directly (action, resource, decision and reasons exactly), and
 * once end to end through a gateway in front of a recording upstream (status, wire error, the
 * RFC 9470 challenge; allowed requests arrive with the normalized path and the same body bytes,
 * refused ones never arrive).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTIONS, type Action } from '../../../src/authorize/actions.js';
import { readBodyField } from '../../../src/authorize/body-field.js';
import { DatabricksClassifier } from '../../../src/authorize/classify/databricks.js';
import type { Classification } from '../../../src/authorize/classify/types.js';
import { Authorizer } from '../../../src/authorize/engine.js';
import { SHIPPED_ROLES } from '../../../src/authorize/roles.js';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import { ManualClock } from '../../../src/lib/clock.js';
import { normalizeTarget } from '../../../src/proxy/path.js';
import { type SeenRequest, startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { identityFor, policyHeaders, policyIdentifier } from '../../helpers/policy-identity.js';

interface Row {
  principal: string;
  roles?: string[];
  groups?: string[];
  authAgeS?: number;
  uv?: boolean;
  authMethod?: string;
  method: string;
  path: string;
  query?: string;
  /** A JSON value (sent as JSON.stringify of it) or a string sent byte for byte. */
  body?: unknown;
  expect: { action: Action; resource: string; decision: 'allow' | 'deny' | 'step_up'; reasons: string[] };
}

const table = JSON.parse(readFileSync(new URL('../../vectors/decisions.json', import.meta.url), 'utf8')) as {
  config: NonNullable<ConfigInput['authorization']>;
  rows: Row[];
};
const rows = table.rows;

const bodyBytes = (r: Row): Buffer | undefined =>
  r.body === undefined ? undefined : Buffer.from(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));

const label = (r: Row) =>
  `${r.principal}${r.roles ? `[${r.roles.join(',')}]` : ''}${r.groups ? `{${r.groups.join(',')}}` : ''}` +
  `${r.authAgeS !== undefined ? ` age=${r.authAgeS}` : ''}${r.uv === false ? ' uv=false' : ''}${r.authMethod ? ` via ${r.authMethod}` : ''} ` +
  `${r.method} ${r.path}${r.query ?? ''} → ${r.expect.decision}`;

describe('the decision table itself', () => {
  it('has enough rows and covers every Databricks action, every shipped role and every outcome', () => {
    expect(rows.length).toBeGreaterThanOrEqual(40);
    // Proxied Databricks actions (not the generic preset's api:*, nor Keygate's own admin:*).
    const databricksActions = (Object.keys(ACTIONS) as Action[]).filter(
      (a) => !a.startsWith('api:') && !a.startsWith('admin:'),
    );
    expect(new Set(rows.map((r) => r.expect.action))).toEqual(new Set(databricksActions));
    const roles = new Set(rows.flatMap((r) => r.roles ?? []));
    for (const role of Object.keys(SHIPPED_ROLES)) expect(roles, role).toContain(role);
    expect(new Set(rows.map((r) => r.expect.decision))).toEqual(new Set(['allow', 'deny', 'step_up']));
    // Bindings (group and user), the custom glob role and the OpenAI body route are exercised.
    expect(rows.some((r) => r.groups?.includes('data-science') && r.expect.decision === 'allow')).toBe(true);
    expect(rows.some((r) => r.principal === 'dana' && r.expect.decision === 'allow')).toBe(true);
    expect(rows.some((r) => r.expect.reasons.includes('role:fraud-invoker:0'))).toBe(true);
    expect(rows.some((r) => r.path === '/serving-endpoints/chat/completions')).toBe(true);
  });
});

const config = parseConfig({ authorization: table.config });
const clock = new ManualClock(Date.UTC(2026, 3, 1, 12));

describe('decision table: classifier + Authorizer', () => {
  const authorizer = new Authorizer(config);
  const classifier = new DatabricksClassifier();

  for (const row of rows) {
    it(label(row), async () => {
      const target = normalizeTarget(row.path + (row.query ?? ''));
      const c = classifier.classify(row.method, target.path, target.query);
      let classification: Classification;
      const fromQuery = 'needsBody' in c && 'query' in c.needsBody ? c.needsBody.query : undefined;
      if ('needsBody' in c && typeof fromQuery === 'string' && row.body === undefined) {
        // The query named the resource and there is no body to disagree with it.
        classification = c.needsBody.resolve(fromQuery);
      } else if ('needsBody' in c) {
        const raw = bodyBytes(row) ?? Buffer.alloc(0);
        const req = Object.assign(Readable.from([raw]), { headers: { 'content-length': String(raw.length) } });
        const { value } = await readBodyField(req as unknown as IncomingMessage, c.needsBody.field);
        classification = c.needsBody.resolve(value);
      } else {
        classification = c;
      }
      expect(classification.action).toBe(row.expect.action);
      expect(`${classification.resource.type}::${classification.resource.id}`).toBe(row.expect.resource);
      const decision = authorizer.decide({
        identity: identityFor(row, clock.now()),
        action: classification.action,
        resource: classification.resource,
        ip: '127.0.0.1',
        method: row.method,
        path: target.path,
        now: clock.now(),
      });
      expect(decision).toEqual({ effect: row.expect.decision, reasons: row.expect.reasons });
    });
  }
});

describe('decision table: end to end through the gateway', () => {
  let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
  let g: TestGateway;
  let seen: SeenRequest[] = [];

  beforeAll(async () => {
    up = await startRecordingUpstream();
    seen = up.seen;
    g = await startGateway(
      { upstreams: { ws: { url: up.url, credential: { type: 'none' } } }, authorization: table.config },
      { clock, identifiers: [policyIdentifier(clock)] },
    );
  });

  afterAll(async () => {
    await g?.close();
    await up?.close();
  });

  beforeEach(() => {
    seen.length = 0;
  });

  for (const row of rows) {
    it(label(row), async () => {
      const body = bodyBytes(row);
      const res = await request(`${g.url}${row.path}${row.query ?? ''}`, {
        method: row.method as 'GET',
        headers: { ...policyHeaders(row), ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body } : {}),
      });
      const text = await res.body.text();
      const target = normalizeTarget(row.path + (row.query ?? ''));
      switch (row.expect.decision) {
        case 'allow':
          expect(res.statusCode, text).toBe(200);
          expect(seen).toHaveLength(1);
          expect(seen[0]?.method).toBe(row.method);
          expect(seen[0]?.url).toBe(target.path + target.query);
          expect(seen[0]?.body.equals(body ?? Buffer.alloc(0))).toBe(true);
          break;
        case 'deny': {
          expect(res.statusCode, text).toBe(403);
          const err = JSON.parse(text) as { error_code: string; message: string };
          expect(err.error_code).toBe('PERMISSION_DENIED');
          expect(err.message).toContain(`(${row.expect.action})`);
          expect(seen).toEqual([]);
          break;
        }
        case 'step_up': {
          expect(res.statusCode, text).toBe(401);
          expect(JSON.parse(text)).toMatchObject({ error_code: 'STEP_UP_REQUIRED' });
          expect(res.headers['www-authenticate']).toMatch(
            /^Bearer error="insufficient_user_authentication"(, error_description="[^"]*")?, max_age=300$/,
          );
          expect(seen).toEqual([]);
          break;
        }
      }
    });
  }
});
