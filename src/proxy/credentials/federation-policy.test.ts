import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.js';
import { workspacePolicies } from './federation-policy.js';

describe('workspacePolicies', () => {
  it('the account-wide policy and one policy per mapped service principal, from what Keygate signs', () => {
    const config = parseConfig({
      publicUrl: 'https://keygate.example.com/some/path',
      upstreams: {
        ws: {
          url: 'https://dbc-1234.cloud.databricks.com',
          credential: {
            type: 'databricks-federation',
            servicePrincipals: [{ keygateId: 'kg-sp-1', clientId: 'ws-app-1' }],
          },
        },
        other: { url: 'http://127.0.0.1:9', credential: { type: 'none' } },
        custom: {
          url: 'https://dbc-5678.cloud.databricks.com',
          credential: { type: 'databricks-federation', audience: 'urn:keygate:ws', subjectClaim: 'email' },
        },
      },
      routes: [{ prefix: '/', upstream: 'ws' }],
    });
    const issuer = 'https://keygate.example.com';
    expect(workspacePolicies(config)).toEqual([
      {
        upstream: 'ws',
        account: { issuer, audiences: ['https://dbc-1234.cloud.databricks.com/oidc/v1/token'], subject_claim: 'sub' },
        servicePrincipals: [
          {
            keygateId: 'kg-sp-1',
            clientId: 'ws-app-1',
            policy: {
              issuer,
              audiences: ['https://dbc-1234.cloud.databricks.com/oidc/v1/token'],
              subject_claim: 'sub',
              subject: 'kg-sp-1',
            },
          },
        ],
      },
      {
        upstream: 'custom',
        account: { issuer, audiences: ['urn:keygate:ws'], subject_claim: 'email' },
        servicePrincipals: [],
      },
    ]);
  });
});
