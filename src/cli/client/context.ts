/** What every people's command starts from: the credentials store and the gateway to talk to. */
import type { Clock } from '../../lib/clock.js';
import { EXIT, type Output } from '../output.js';
import { CredentialStore, keygateHome } from './credentials.js';
import { resolveGateway } from './gateway-url.js';

export interface ClientContext {
  store: CredentialStore;
  gateway: string;
  clock: Clock;
}

export function clientContext(gatewayFlag: string | undefined, env: NodeJS.ProcessEnv, clock: Clock): ClientContext {
  const store = new CredentialStore(keygateHome(env), clock);
  return { store, gateway: resolveGateway(gatewayFlag, env, store.lastGateway()), clock };
}

/** A command's failure: one line on stderr, exit code 1. */
export function failed(out: Output, e: unknown): number {
  out.err(`keygate: ${(e as Error).message}`);
  return EXIT.FAILED;
}
