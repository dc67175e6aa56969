/**
 * The workspace simulator as bench/federation's token endpoint, in its own process: the demo
 * service principal (for databricks-m2m) and BENCH_USERS people user0…@example.com whom an
 * account-wide federation policy (issuer BENCH_ISSUER, audience BENCH_AUDIENCE) maps to. It
 * answers `{ type: 'stats' }` over IPC with how many tokens it issued by each grant.
 */
import { DEMO_SP, demoSimOptions, type SimIdentity, startSimulator } from '../../sim/index.js';
import { announce } from '../proxy/child.js';

const users: SimIdentity[] = Array.from({ length: Number(process.env.BENCH_USERS ?? 1) }, (_, i) => ({
  id: String(10_000 + i),
  userName: `user${i}@example.com`,
  kind: 'user',
}));
const sim = await startSimulator(
  demoSimOptions({
    users,
    servicePrincipals: demoSimOptions().servicePrincipals ?? [],
    federationPolicies: [
      { issuer: process.env.BENCH_ISSUER as string, audiences: [process.env.BENCH_AUDIENCE as string] },
    ],
  }),
);
process.on('message', (m: { type?: string }) => {
  if (m.type !== 'stats') return;
  const ok = sim.tokenRequests.filter((t) => t.ok);
  const exchanged = ok.filter((t) => t.grantType === 'urn:ietf:params:oauth:grant-type:token-exchange');
  process.send?.({
    type: 'stats',
    exchanges: exchanged.length,
    clientCredentials: ok.filter((t) => t.grantType === 'client_credentials' && t.identity === DEMO_SP.userName).length,
    failed: sim.tokenRequests.length - ok.length,
    people: new Set(exchanged.map((t) => t.identity)).size,
  });
});
process.once('SIGTERM', () => {
  sim.close().then(() => process.exit(0));
});
announce(sim.url);
