/**
 * A gateway whose upstream is the workspace simulator with per-user token federation: the
 * simulator's account-wide policy trusts the gateway's public URL as issuer, and fetches the
 * gateway's JWKS from it. Both listen on ports chosen first, because each must know the other's
 * URL before it starts.
 */
import type { ChainedRecord } from '../../src/audit/record.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { Clock } from '../../src/lib/clock.js';
import {
  DEMO_ALICE,
  DEMO_BOB,
  DEMO_SP,
  demoSimOptions,
  type SimFederationPolicy,
  type SimIdentity,
  type SimOptions,
  type Simulator,
  startSimulator,
} from '../../sim/index.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { freePort, startGateway, type TestGateway, testIdentifier } from './index.js';
import { policyIdentifier } from './policy-identity.js';

/** A workspace service principal that a Keygate service principal acts as (SP federation). */
export const WORKLOAD_SP: SimIdentity = {
  id: '3001',
  userName: '0a1b2c3d-0000-4000-8000-0000000000c1',
  displayName: 'ci-deployer',
  kind: 'service_principal',
};
/** A third workspace user. */
export const DAVE: SimIdentity = { id: '1004', userName: 'dave@example.com', kind: 'user' };
/** The Keygate service principal (as `policyHeaders({ principal: 'sp:ci-bot' })` names it) mapped to WORKLOAD_SP. */
export const KEYGATE_SP = 'ci-bot';

type FederationCredential = Extract<
  NonNullable<ConfigInput['upstreams']>[string]['credential'],
  { type: 'databricks-federation' }
>;

export interface FederationSetup {
  g: TestGateway;
  sim: Simulator;
  /** The gateway's public URL: the issuer the simulator trusts. */
  publicUrl: string;
  /** The audience the policies expect: the simulator's token endpoint (Keygate's default). */
  audience: string;
  close(): Promise<void>;
}

export interface FederationOptions {
  clock?: Clock;
  /** Fields of the databricks-federation credential besides its type. */
  credential?: Omit<FederationCredential, 'type'>;
  /** Replace the simulator's policies (given the issuer and default audience). */
  policies?: (issuer: string, audience: string) => SimFederationPolicy[];
  sim?: SimOptions;
  gateway?: Omit<ConfigInput, 'upstreams' | 'publicUrl' | 'listen'>;
  logLines?: string[];
  /** An SQLite file for the gateway's store (so that a CLI command can open it too); default in memory. */
  storePath?: string;
}

export async function startFederation(o: FederationOptions = {}): Promise<FederationSetup> {
  const [port, simPort] = [await freePort(), await freePort()];
  const publicUrl = `http://127.0.0.1:${port}`;
  const simUrl = `http://127.0.0.1:${simPort}`;
  const audience = `${simUrl}/oidc/v1/token`;
  const clock = o.clock;
  const sim = await startSimulator(
    demoSimOptions({
      port: simPort,
      users: [DEMO_ALICE, DEMO_BOB, DAVE],
      servicePrincipals: [
        ...(demoSimOptions().servicePrincipals ?? []),
        { clientId: WORKLOAD_SP.userName, clientSecret: 'unused-secret-of-the-workload-sp', identity: WORKLOAD_SP },
      ],
      federationPolicies: o.policies?.(publicUrl, audience) ?? [
        { issuer: publicUrl, audiences: [audience] },
        {
          issuer: publicUrl,
          audiences: [audience],
          subject: KEYGATE_SP,
          servicePrincipalClientId: WORKLOAD_SP.userName,
        },
      ],
      ...(clock === undefined ? {} : { now: () => clock.now() }),
      ...o.sim,
    }),
  );
  let g: TestGateway;
  try {
    g = await startGateway(
      {
        ...o.gateway,
        listen: { host: '127.0.0.1', port },
        publicUrl,
        upstreams: {
          workspace: {
            url: simUrl,
            credential: {
              type: 'databricks-federation',
              servicePrincipals: [{ keygateId: KEYGATE_SP, clientId: WORKLOAD_SP.userName }],
              ...o.credential,
            },
          },
        },
      },
      {
        identifiers: [testIdentifier(), policyIdentifier(clock ?? { now: () => Date.now() })],
        ...(clock === undefined ? {} : { clock }),
        ...(o.logLines === undefined ? {} : { logLines: o.logLines }),
        ...(o.storePath === undefined ? {} : { store: new SqliteStore({ path: o.storePath }) }),
      },
    );
  } catch (e) {
    await sim.close();
    throw e;
  }
  return {
    g,
    sim,
    publicUrl,
    audience,
    close: async () => {
      await g.close();
      await sim.close();
    },
  };
}

/** Every http.request record, once the audit log has flushed. */
export async function requestRecords(g: TestGateway): Promise<ChainedRecord[]> {
  await g.gw.audit.flushed();
  return (await g.gw.audit.query({ kind: 'http.request' }, { limit: 1000 })).lines.map(
    (l) => JSON.parse(l) as ChainedRecord,
  );
}

/** Wait (up to 5 s) until `check` holds; for work a request starts behind itself. */
export async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 250; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

export { DEMO_SP };
