// A ready-made configuration for demos and the `keygate sim` command: one PAT user, one service
// principal, and users that account-wide federation can map to. The values are public test fixtures.
import type { SimIdentity, SimOptions } from './types.js';

export const DEMO_ALICE: SimIdentity = {
  id: '1001',
  userName: 'alice@example.com',
  displayName: 'Alice Analyst',
  kind: 'user',
  groups: ['ml-engineers'],
};

export const DEMO_BOB: SimIdentity = {
  id: '1002',
  userName: 'bob@example.com',
  displayName: 'Bob Builder',
  kind: 'user',
  groups: ['data-scientists'],
};

/** A service principal's userName is its application (client) id. */
export const DEMO_SP: SimIdentity = {
  id: '2001',
  userName: '6f1c2a9e-4b3d-4e8f-9a7b-1c2d3e4f5a6b',
  displayName: 'keygate-gateway',
  kind: 'service_principal',
  groups: ['ml-engineers'],
};

/** Alice's PAT, in the `dapi` + 32 hex format. */
export const DEMO_PAT = 'dapia11ce000000000000000000000000000';
export const DEMO_SP_SECRET = 'dosedemo0000000000000000000000000000';

export function demoSimOptions(overrides: SimOptions = {}): SimOptions {
  return {
    pats: { [DEMO_PAT]: DEMO_ALICE },
    servicePrincipals: [{ clientId: DEMO_SP.userName, clientSecret: DEMO_SP_SECRET, identity: DEMO_SP }],
    users: [DEMO_ALICE, DEMO_BOB],
    ...overrides,
  };
}
