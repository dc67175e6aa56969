/**
 * Approval of one exact request. An agent (a service principal acting for a person through a
 * delegation grant) asks for an action that needs approval: Keygate does not forward it. It
 * keeps a digest of exactly what was asked — method, normalized path, query, SHA-256 of the
 * body — and answers 401 APPROVAL_REQUIRED with the approval's id and page. The person approves
 * with a WebAuthn assertion whose challenge is derived from that digest and the approval id
 * (`approvalChallenge`), so the signature covers that request and nothing else. The agent
 * retries the identical request with the approval id; Keygate recomputes the digest, and the
 * store marks the approval used in one statement (single use across replicas). A different
 * request, a second use, an expired approval or one approved by someone else does not pass.
 */
import { createHash, createHmac } from 'node:crypto';
import { request } from 'undici';
import { canonicalJson } from '../audit/record.js';
import { randomId, sha256Hex } from '../crypto/random.js';
import { KeygateError } from '../errors/index.js';
import type { Clock } from '../lib/clock.js';
import type { ApprovalRecord, Store } from '../store/types.js';

/** The header an agent's retry names its approval in. */
export const APPROVAL_HEADER = 'x-keygate-approval';

/** The most body an approval holds (and shows). A larger request needing approval is refused. */
export const MAX_APPROVAL_BODY = 1024 * 1024;

/** What an approval covers: SHA-256 over the canonical JSON of method, path, query and the body's SHA-256. */
export function approvalDigest(r: { method: string; path: string; query: string; bodySha256: string }): string {
  return sha256Hex(
    canonicalJson({ v: 1, method: r.method.toUpperCase(), path: r.path, query: r.query, body: r.bodySha256 }),
  );
}

/**
 * The WebAuthn challenge for approving: SHA-256 of a domain-separated string naming the
 * approval and its digest (base64url). The authenticator signs clientDataJSON, which holds
 * it: an assertion made for one approval verifies for no other request.
 */
export function approvalChallenge(id: string, digest: string): string {
  return createHash('sha256').update(`keygate-approval:v1\n${id}\n${digest}`).digest('base64url');
}

export interface AgentCaller {
  /** The person the agent acts for. */
  userId: string;
  /** The agent's service principal id, and the grant it acts under. */
  agentId: string;
  grantId: string;
}

/** What the gateway holds for approval: who asks, and the request as classified. */
export type ApprovalRequest = { caller: AgentCaller; body: Buffer } & Pick<
  ApprovalRecord,
  'upstream' | 'method' | 'path' | 'query' | 'action' | 'resource' | 'contentType'
>;

export interface WebhookOptions {
  url: string;
  /** HMAC-SHA256 key for the `x-keygate-signature` header. */
  secret: string;
}

export interface ApprovalsDeps {
  store: Store;
  clock: Clock;
  ttlMs: number;
  publicOrigin: () => string;
  webhook?: WebhookOptions | undefined;
  /** Names for the webhook's text: the person's email and the agent's name. */
  describe: (caller: AgentCaller) => Promise<{ user: string; agent: string }>;
  log: {
    warn(o: object, msg: string): void;
  };
}

export class Approvals {
  constructor(private readonly d: ApprovalsDeps) {}

  /** The page where the person sees and approves (or denies) an approval. */
  url(id: string): string {
    return `${this.d.publicOrigin()}/.keygate/approve/${encodeURIComponent(id)}`;
  }

  /** Hold the request, pending its person's tap; announce it to the webhook. */
  async request(r: ApprovalRequest): Promise<ApprovalRecord> {
    const now = this.d.clock.now();
    const bodySha256 = sha256Hex(r.body);
    const a: ApprovalRecord = {
      id: `apr_${randomId(18)}`,
      userId: r.caller.userId,
      agentId: r.caller.agentId,
      grantId: r.caller.grantId,
      upstream: r.upstream,
      method: r.method.toUpperCase(),
      path: r.path,
      query: r.query,
      action: r.action,
      resource: r.resource,
      contentType: r.contentType,
      body: new Uint8Array(r.body),
      bodySha256,
      digest: approvalDigest({ method: r.method, path: r.path, query: r.query, bodySha256 }),
      status: 'pending',
      createdAt: now,
      expiresAt: now + this.d.ttlMs,
      decidedAt: null,
      credentialId: null,
      eventId: null,
      usedAt: null,
    };
    await this.d.store.insertApproval(a);
    if (this.d.webhook !== undefined) void this.notify(this.d.webhook, a);
    return a;
  }

  /**
   * The agent's retry: the approval must be this agent's, for this person and grant, approved
   * and unexpired, for exactly this request (the digest recomputed from what arrived) — and is
   * then used, once. Throws APPROVAL_INVALID naming which check failed.
   */
  async redeem(id: string, caller: AgentCaller, digest: string): Promise<ApprovalRecord> {
    const refuse = (message: string, detail: string) => new KeygateError('APPROVAL_INVALID', { message, detail });
    const a = id.length <= 64 ? await this.d.store.getApproval(id) : null;
    if (a === null) throw refuse('No such approval.', 'unknown approval id');
    if (a.userId !== caller.userId || a.agentId !== caller.agentId || a.grantId !== caller.grantId)
      throw refuse('This approval was not given to this agent for this person.', 'approval of another caller');
    const now = this.d.clock.now();
    if (a.status === 'used') throw refuse('This approval was already used.', 'approval replayed');
    if (a.status === 'denied') throw refuse('This request was denied.', 'approval denied');
    if (a.expiresAt <= now) throw refuse('This approval has expired; ask again.', 'approval expired');
    if (a.status !== 'approved') throw refuse('This request is not approved yet.', 'approval pending');
    if (a.digest !== digest)
      throw refuse(
        'This request is not the one that was approved (method, path, query or body differ).',
        'approval digest mismatch',
      );
    // The single use: one UPDATE … WHERE status = 'approved' AND digest = … AND unexpired.
    if (!(await this.d.store.useApproval(a.id, digest, now)))
      throw refuse('This approval was already used.', 'approval replayed (race)');
    return a;
  }

  /** POST the approval's announcement, signed (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`). */
  private async notify(w: WebhookOptions, a: ApprovalRecord): Promise<void> {
    try {
      const names = await this.d.describe({ userId: a.userId, agentId: a.agentId, grantId: a.grantId });
      const body = JSON.stringify({
        type: 'approval.requested',
        id: a.id,
        url: this.url(a.id),
        user: names.user,
        agent: names.agent,
        method: a.method,
        path: a.path,
        action: a.action,
        resource: a.resource,
        expiresAt: new Date(a.expiresAt).toISOString(),
      });
      const t = Math.floor(this.d.clock.now() / 1000);
      const sig = createHmac('sha256', w.secret).update(`${t}.${body}`).digest('hex');
      const res = await request(w.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-keygate-signature': `t=${t},v1=${sig}` },
        body,
        headersTimeout: 5_000,
        bodyTimeout: 5_000,
      });
      await res.body.dump();
      if (res.statusCode >= 300)
        this.d.log.warn({ status: res.statusCode }, 'approval webhook refused the announcement');
    } catch (e) {
      this.d.log.warn({ detail: (e as Error).message }, 'approval webhook not reached');
    }
  }
}

/** The changed leaves between two JSON values, by path (`a.b[0].c`), for the approval page. */
export function jsonChanges(before: unknown, after: unknown): { path: string; before?: unknown; after?: unknown }[] {
  const flat = (v: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> => {
    if (Array.isArray(v) && v.length > 0) {
      for (const [i, x] of v.entries()) flat(x, `${prefix}[${i}]`, out);
    } else if (v !== null && typeof v === 'object' && Object.keys(v).length > 0)
      for (const [k, x] of Object.entries(v)) flat(x, prefix === '' ? k : `${prefix}.${k}`, out);
    else out.set(prefix, v);
    return out;
  };
  const b = flat(before, '', new Map());
  const a = flat(after, '', new Map());
  const paths = [...new Set([...b.keys(), ...a.keys()])].sort();
  const out: { path: string; before?: unknown; after?: unknown }[] = [];
  for (const p of paths) {
    const x = b.get(p);
    const y = a.get(p);
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    out.push({ path: p, ...(b.has(p) ? { before: x } : {}), ...(a.has(p) ? { after: y } : {}) });
  }
  return out;
}
