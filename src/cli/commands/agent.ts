/**
 * `keygate agent grant|list|revoke`: a person delegates some actions to an AI agent (a
 * service principal) for a while, through the gateway they logged in to (`keygate login`).
 * The grant id goes to stdout: the agent trades it, authenticating as itself, for short tokens
 * that act for the person (RFC 8693 token exchange, `subject_token_type`
 * urn:keygate:params:oauth:token-type:delegation-grant).
 */
import type { GrantView } from '../../agents/grants.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { AdminApi, AdminApiError } from '../client/admin-api.js';
import { clientContext } from '../client/context.js';
import { EXIT, type Output } from '../output.js';

export const AGENTS_PREFIX = '/.keygate/api/agents';

async function withAgentsApi(
  o: { gateway?: string },
  out: Output,
  fn: (api: AdminApi) => Promise<void>,
  env: NodeJS.ProcessEnv,
  clock: Clock,
): Promise<number> {
  try {
    const { store, gateway } = clientContext(o.gateway, env, clock);
    await fn(new AdminApi(gateway, store, clock, AGENTS_PREFIX));
    return EXIT.OK;
  } catch (e) {
    out.err(e instanceof AdminApiError ? `keygate: ${e.code}: ${e.message}` : `keygate: ${(e as Error).message}`);
    return EXIT.FAILED;
  }
}

export function agentGrant(
  o: { agent: string; actions: string; ttl: string; gateway?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  const actions = o.actions
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  return withAgentsApi(
    o,
    out,
    async (api) => {
      const g = await api.call<GrantView>('POST', '/grants', { agent: o.agent, actions, ttl: o.ttl });
      out.out(g.id);
      out.err(`Delegated ${g.actions.join(', ')} to ${g.agent.name} until ${g.expiresAt}.`);
      out.err(
        `The agent exchanges the id above at ${api.gateway}/.keygate/oauth/token as itself (grant_type=urn:ietf:params:oauth:grant-type:token-exchange, ` +
          'subject_token=<id>, subject_token_type=urn:keygate:params:oauth:token-type:delegation-grant).',
      );
      out.err(`End it with: keygate agent revoke ${g.id}`);
    },
    env,
    clock,
  );
}

export function agentList(
  o: { gateway?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  return withAgentsApi(
    o,
    out,
    async (api) => {
      const { grants } = await api.call<{ grants: GrantView[] }>('GET', '/grants');
      if (grants.length === 0) out.err('No delegations.');
      for (const g of grants) {
        const state = g.revokedAt !== null ? 'revoked' : g.live ? 'live' : 'expired';
        out.out(`${g.id}  ${g.agent.name}  ${g.actions.join(',')}  until ${g.expiresAt}  ${state}`);
      }
    },
    env,
    clock,
  );
}

export function agentRevoke(
  id: string,
  o: { gateway?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  return withAgentsApi(
    o,
    out,
    async (api) => {
      await api.call('DELETE', `/grants/${encodeURIComponent(id)}`);
      out.err(`Revoked ${id}: the agent's tokens from it are refused from now on.`);
    },
    env,
    clock,
  );
}
