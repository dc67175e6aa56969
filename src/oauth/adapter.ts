/**
 * oidc-provider's persistence, backed by Keygate's store so that every replica sees the same
 * codes, device codes, refresh tokens and grants. Clients other than the built-in public ones
 * are service principals, read from their own table.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { randomId } from '../crypto/random.js';
import { oidcModule } from './oidc-module.js';
import type { Clock } from '../lib/clock.js';
import type { Store } from '../store/types.js';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** How long a replay claim holds before the provider's save gives it the jti's own expiry. */
const REPLAY_CLAIM_MS = 10 * 60_000;

/**
 * The client metadata oidc-provider sees for a service principal. Its `client_secret` is a
 * random stand-in: secrets are only stored hashed, and the provider's secret comparison is
 * replaced by a check against those hashes (see provider.ts).
 */
const SECRET_STAND_IN = `kg-hashed-${randomId(24)}`;

export interface AdapterHooks {
  /** A grant (a refresh-token family and everything issued from it) was revoked. */
  onGrantRevoked(grantId: string): Promise<void>;
}

export function adapterFactory(store: Store, clock: Clock, hooks: AdapterHooks): new (name: string) => Adapter {
  return class StoreAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      await store.upsertOAuthArtifact({
        model: this.model,
        id,
        payload: JSON.stringify(payload),
        grantId: typeof payload.grantId === 'string' ? payload.grantId : null,
        userCode: typeof payload.userCode === 'string' ? payload.userCode : null,
        uid: typeof payload.uid === 'string' ? payload.uid : null,
        expiresAt: expiresIn === undefined ? null : clock.now() + expiresIn * 1000,
        consumedAt: null,
      });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return clientFor(store, id);
      if (this.model === 'ReplayDetection') return this.claim(id);
      return this.read('id', id);
    }

    /**
     * oidc-provider's replay detection (a client assertion's or a DPoP proof's `jti`) finds,
     * then saves: two requests with the same jti — on one replica or two — could both pass.
     * Here the find itself claims the id atomically: "not found" only for the first caller.
     * The provider's save that follows sets the real expiry.
     */
    private async claim(id: string): Promise<AdapterPayload | undefined> {
      const first = await store.insertOAuthArtifactIfAbsent(
        {
          model: this.model,
          id,
          payload: '{}',
          grantId: null,
          userCode: null,
          uid: null,
          expiresAt: clock.now() + REPLAY_CLAIM_MS,
          consumedAt: null,
        },
        clock.now(),
      );
      return first ? undefined : {};
    }

    findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return this.read('userCode', userCode);
    }

    findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.read('uid', uid);
    }

    /**
     * oidc-provider reads an artifact, checks that it is not consumed, then consumes it: two
     * requests (on one replica or two) could both pass the check. The store's consume is atomic,
     * so the second one lands here: it is treated as the reuse it is — the grant is revoked
     * (RFC 6749 §10.5, RFC 9700 §4.14.2) and the request refused.
     */
    async consume(id: string): Promise<void> {
      if (await store.consumeOAuthArtifact(this.model, id, clock.now())) return;
      const r = await store.findOAuthArtifact(this.model, 'id', id, clock.now());
      if (r?.grantId) await this.revokeByGrantId(r.grantId);
      throw new (oidcModule().errors.InvalidGrant)(`${this.model} already consumed`);
    }

    async destroy(id: string): Promise<void> {
      await store.destroyOAuthArtifact(this.model, id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await store.revokeOAuthGrant(grantId);
      await hooks.onGrantRevoked(grantId);
    }

    private async read(by: 'id' | 'userCode' | 'uid', value: string): Promise<AdapterPayload | undefined> {
      const r = await store.findOAuthArtifact(this.model, by, value, clock.now());
      if (!r) return undefined;
      const payload = JSON.parse(r.payload) as AdapterPayload;
      // oidc-provider reads `consumed` to detect reuse (a rotated refresh token presented again).
      if (r.consumedAt !== null) payload.consumed = Math.floor(r.consumedAt / 1000);
      return payload;
    }
  };
}

/** A service principal as an OAuth client; undefined for unknown or disabled ones. */
async function clientFor(store: Store, id: string): Promise<AdapterPayload | undefined> {
  const sp = await store.getServicePrincipal(id);
  if (!sp || sp.disabledAt !== null) return undefined;
  const hasSecret = (await store.listServicePrincipalSecrets(sp.id)).length > 0;
  const base = { client_id: sp.id, client_name: sp.name, redirect_uris: [], response_types: [] };
  if (sp.jwks !== null) {
    return {
      ...base,
      grant_types: ['client_credentials', TOKEN_EXCHANGE],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: JSON.parse(sp.jwks) as AdapterPayload['jwks'],
    };
  }
  if (hasSecret) {
    return {
      ...base,
      grant_types: ['client_credentials', TOKEN_EXCHANGE],
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: SECRET_STAND_IN,
    };
  }
  // Neither secret nor key: the workload proves itself only with its platform's token.
  return { ...base, grant_types: [TOKEN_EXCHANGE], token_endpoint_auth_method: 'none' };
}
