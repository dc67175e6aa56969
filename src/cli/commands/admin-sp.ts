/**
 * `keygate admin sp …` and `keygate admin keys rotate` against the local store (bootstrap and
 * single-node operation): service principals and their secrets, and the token signing key.
 * A secret is printed once, on stdout; everything else goes to stderr.
 */
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { recordCliChange } from '../../audit/outbox.js';
import type { Config } from '../../config/schema.js';
import { SigningKeys } from '../../crypto/keys.js';
import { systemClock } from '../../lib/clock.js';
import { ServicePrincipals } from '../../oauth/service-principals.js';
import type { Store } from '../../store/types.js';
import { EXIT, type Output } from '../output.js';
import { withLocalStore } from './admin.js';

const sps = (store: Store, config: Config) => new ServicePrincipals(store, systemClock, config.tokens.secretLifetime);

export async function adminSpCreate(
  name: string,
  o: { role?: string[]; description?: string; secret: boolean; jwks?: string; config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return withLocalStore(o.config, out, env, async (store, config) => {
    let jwks: { keys: JWK[] } | undefined;
    if (o.jwks !== undefined) {
      const doc = JSON.parse(readFileSync(o.jwks, 'utf8')) as { keys?: JWK[] } & JWK;
      jwks = Array.isArray(doc.keys) ? { keys: doc.keys } : { keys: [doc] };
    }
    const { sp, secret } = await sps(store, config).create({
      name,
      roles: o.role ?? [],
      createdBy: 'cli',
      withSecret: o.secret,
      ...(o.description === undefined ? {} : { description: o.description }),
      ...(jwks === undefined ? {} : { jwks }),
    });
    await recordCliChange(store, 'admin sp create', {
      op: 'service_principal.create',
      target: `service_principal:${sp.id}`,
      after: {
        name: sp.name,
        roles: sp.roles,
        auth: jwks ? 'private_key_jwt' : secret ? 'client_secret_basic' : 'federation',
        secretIds: secret ? [secret.record.id] : [],
      },
    });
    out.err(`Service principal ${sp.name} created; roles: ${sp.roles.join(', ') || '(none)'}.`);
    out.err(`client_id: ${sp.id}`);
    if (secret) {
      out.err(`The secret below is shown once; it expires ${new Date(secret.record.expiresAt).toISOString()}.`);
      out.out(`${sp.id}:${secret.secret}`);
    } else {
      out.out(sp.id);
      out.err(
        jwks
          ? 'It authenticates with private_key_jwt (no shared secret).'
          : 'It has no secret: it can only exchange a federated workload token (tokens.federation).',
      );
    }
    return EXIT.OK;
  });
}

export async function adminSpRotate(
  name: string,
  o: { config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return withLocalStore(o.config, out, env, async (store, config) => {
    const r = await sps(store, config).rotate(name);
    await recordCliChange(store, 'admin sp rotate', {
      op: 'service_principal.secret_create',
      target: `service_principal:${r.sp.id}`,
      after: { secretId: r.secret.record.id, revokedSecretIds: r.revoked },
    });
    out.err(
      `New secret for ${r.sp.name}, valid until ${new Date(r.secret.record.expiresAt).toISOString()}. ` +
        'The previous secret keeps working until you revoke it' +
        (r.revoked.length > 0 ? `; older ones were revoked (${r.revoked.join(', ')}).` : '.'),
    );
    out.out(`${r.sp.id}:${r.secret.secret}`);
    return EXIT.OK;
  });
}

export async function adminSpList(
  o: { config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return withLocalStore(o.config, out, env, async (store, config) => {
    const s = sps(store, config);
    for (const sp of await store.listServicePrincipals()) {
      const live = await s.liveSecrets(sp.id);
      const auth =
        sp.jwks !== null
          ? 'private_key_jwt'
          : live.length > 0
            ? `secrets: ${live.map((x) => `${x.id} (expires ${new Date(x.expiresAt).toISOString()})`).join(', ')}`
            : 'federation only';
      out.out(`${sp.name}\t${sp.id}\t${sp.roles.join(',') || '-'}\t${sp.disabledAt === null ? auth : 'disabled'}`);
    }
    return EXIT.OK;
  });
}

export async function adminSpRevokeSecret(
  name: string,
  secretId: string,
  o: { config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return withLocalStore(o.config, out, env, async (store, config) => {
    if (!(await sps(store, config).revokeSecret(name, secretId))) {
      out.err(`keygate: no live secret ${secretId} for ${name}`);
      return EXIT.FAILED;
    }
    await recordCliChange(store, 'admin sp revoke-secret', {
      op: 'service_principal.secret_revoke',
      target: `service_principal:${name}`,
      before: { secretId },
    });
    out.err(`Secret ${secretId} of ${name} revoked.`);
    return EXIT.OK;
  });
}

export async function adminKeysRotate(
  o: { config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return withLocalStore(o.config, out, env, async (store, config) => {
    const now = systemClock.now();
    await store.retireSigningKeys('token', now);
    const keys = await SigningKeys.load(store, 'token', systemClock, {
      rotateAfterMs: config.tokens.signingKeyRotation,
    });
    await recordCliChange(store, 'admin keys rotate', {
      op: 'signing_key.rotate',
      target: 'signing_key:token',
      after: { kid: keys.current().kid },
    });
    out.err(
      'Token signing key rotated; running gateways switch within a minute. The old public key stays published until its tokens expire.',
    );
    out.out(keys.current().kid);
    return EXIT.OK;
  });
}
