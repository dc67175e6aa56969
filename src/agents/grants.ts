/**
 * Delegation: a person lets an agent (a service principal) act for them, for some actions,
 * for a while. The agent then trades the grant at the token endpoint (RFC 8693, with its own
 * client authentication) for a short access token whose `sub` is the person and whose `act`
 * claim names the agent (RFC 8693 §4.1). Its scope is the grant's actions; at each request the
 * policy decides with the person's roles and groups, so what it may do is the intersection of
 * what the person may do and what the grant allows. It never outlives the grant, and ends
 * within a second when the grant is revoked or the person disabled.
 */
import { randomId } from '../crypto/random.js';
import { ACTION_NAMES, type Action } from '../authorize/actions.js';
import type { AuthEvents, EventContext } from '../authenticate/auth-events.js';
import { KeygateError } from '../errors/index.js';
import type { Clock } from '../lib/clock.js';
import type { AgentGrantRecord, ServicePrincipalRecord, Store, UserRecord } from '../store/types.js';

/** The `subject_token_type` an agent names a delegation grant with. */
export const DELEGATION_TOKEN_TYPE = 'urn:keygate:params:oauth:token-type:delegation-grant';

/** The revocation family of a grant's tokens (their `kg_grant` claim). */
export const delegationFamily = (grantId: string): string => `dlg_${grantId}`;

/** Actions that can never be delegated: Keygate's own administration. */
const NEVER: ReadonlySet<string> = new Set(['admin:read', 'admin:manage']);

export interface GrantView {
  id: string;
  agent: { id: string; name: string };
  actions: string[];
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  live: boolean;
}

export interface AgentGrantsDeps {
  store: Store;
  clock: Clock;
  events: AuthEvents;
  /** End a token family at once on every replica. */
  revokeFamily: (family: string) => Promise<void>;
  /** The longest a grant may last. */
  maxTtlMs: number;
}

export class AgentGrants {
  constructor(private readonly d: AgentGrantsDeps) {}

  async create(
    user: UserRecord,
    o: { agent: string; actions: readonly string[]; ttlMs: number },
    ctx: EventContext,
  ): Promise<GrantView> {
    const bad = (message: string) => new KeygateError('BAD_REQUEST', { message });
    const agent = await this.agentNamed(o.agent);
    if (agent === null) throw bad(`No service principal "${o.agent}" to delegate to.`);
    if (agent.disabledAt !== null) throw bad(`The service principal "${agent.name}" is disabled.`);
    const actions = [...new Set(o.actions)].sort();
    if (actions.length === 0) throw bad('Name at least one action to delegate.');
    for (const a of actions) {
      if (!(ACTION_NAMES as readonly string[]).includes(a)) throw bad(`"${a}" is not an action.`);
      if (NEVER.has(a)) throw bad(`"${a}" cannot be delegated to an agent.`);
    }
    if (!Number.isFinite(o.ttlMs) || o.ttlMs <= 0) throw bad('The grant needs a positive lifetime.');
    if (o.ttlMs > this.d.maxTtlMs)
      throw bad(`A grant lasts at most ${Math.floor(this.d.maxTtlMs / 3_600_000)} h (agents.maxGrantLifetime).`);
    const now = this.d.clock.now();
    const g: AgentGrantRecord = {
      id: `dlg_${randomId(18)}`,
      userId: user.id,
      agentId: agent.id,
      actions,
      createdAt: now,
      expiresAt: now + o.ttlMs,
      revokedAt: null,
    };
    await this.d.store.insertAgentGrant(g);
    await this.d.events.record('agent.granted', ctx, {
      outcome: 'success',
      userId: user.id,
      via: `agent:${agent.name}:${g.id}:${actions.join(',')}`,
    });
    return view(g, agent, now);
  }

  async list(userId: string): Promise<GrantView[]> {
    const now = this.d.clock.now();
    const out: GrantView[] = [];
    for (const g of await this.d.store.listAgentGrants(userId)) {
      const agent = await this.d.store.getServicePrincipal(g.agentId);
      out.push(view(g, agent, now));
    }
    return out;
  }

  /** The person ends a grant: its tokens are refused from now on, on every replica. */
  async revoke(userId: string, id: string, ctx: EventContext): Promise<void> {
    if (!(await this.d.store.revokeAgentGrant(userId, id, this.d.clock.now())))
      throw new KeygateError('NOT_FOUND', { message: 'No such live grant of yours.' });
    await this.d.revokeFamily(delegationFamily(id));
    await this.d.events.record('agent.grant_revoked', ctx, { outcome: 'success', userId, via: `grant:${id}` });
  }

  /**
   * The token endpoint's check (RFC 8693 §2.1, subject_token): the grant exists, is this
   * agent's, is live, and its person is enabled. Returns what the token is made from, or the
   * reason it is refused.
   */
  async forExchange(
    grantId: string,
    agentId: string,
  ): Promise<{ grant: AgentGrantRecord; user: UserRecord; agent: ServicePrincipalRecord } | { refused: string }> {
    const g = grantId.length <= 64 ? await this.d.store.getAgentGrant(grantId) : null;
    if (g === null) return { refused: 'unknown grant' };
    if (g.agentId !== agentId) return { refused: 'grant of another agent' };
    const now = this.d.clock.now();
    if (g.revokedAt !== null) return { refused: 'grant revoked' };
    if (g.expiresAt <= now) return { refused: 'grant expired' };
    const user = await this.d.store.getUser(g.userId);
    if (!user || user.disabledAt !== null) return { refused: 'person disabled' };
    const agent = await this.d.store.getServicePrincipal(agentId);
    if (!agent || agent.disabledAt !== null) return { refused: 'agent disabled' };
    return { grant: g, user, agent };
  }

  private async agentNamed(nameOrId: string): Promise<ServicePrincipalRecord | null> {
    return (
      (await this.d.store.getServicePrincipalByName(nameOrId)) ?? (await this.d.store.getServicePrincipal(nameOrId))
    );
  }
}

function view(g: AgentGrantRecord, agent: ServicePrincipalRecord | null, now: number): GrantView {
  return {
    id: g.id,
    agent: { id: g.agentId, name: agent?.name ?? g.agentId },
    actions: g.actions,
    createdAt: new Date(g.createdAt).toISOString(),
    expiresAt: new Date(g.expiresAt).toISOString(),
    revokedAt: g.revokedAt === null ? null : new Date(g.revokedAt).toISOString(),
    live: g.revokedAt === null && g.expiresAt > now,
  };
}

/** The narrower of what was asked (scope) and what the grant allows. */
export function delegatedScope(grantActions: readonly string[], requested: readonly string[]): Action[] {
  const asked = requested.filter((s) => s !== 'all-apis');
  const allowed = grantActions as Action[];
  return asked.length === 0 ? [...allowed] : allowed.filter((a) => asked.includes(a));
}
