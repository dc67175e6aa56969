/**
 * `keygate admin …` against the local store: works before any admin exists (bootstrap).
 * `invite` prints a one-time enrollment URL; `recover` a one-time recovery URL.
 */
import { recordCliChange } from '../../audit/outbox.js';
import { Enrollment, isEmail } from '../../authenticate/enrollment.js';
import type { Config } from '../../config/schema.js';
import { isKeygateError } from '../../errors/index.js';
import { systemClock } from '../../lib/clock.js';
import { openStore } from '../../store/open.js';
import type { Store } from '../../store/types.js';
import { EXIT, type Output } from '../output.js';
import { loadOrReport } from './serve.js';

export function publicOriginOf(config: Config): string {
  if (config.publicUrl !== undefined) return new URL(config.publicUrl).origin;
  return `${config.tls ? 'https' : 'http'}://localhost:${config.listen.port}`;
}

/**
 * Run `fn` on the local store named by the config (migrated first), closing it afterwards; a
 * failure prints one line and exits 1.
 */
export async function withLocalStore(
  file: string | undefined,
  out: Output,
  env: NodeJS.ProcessEnv,
  fn: (store: Store, config: Config) => Promise<number>,
): Promise<number> {
  const loaded = loadOrReport(file, out, env);
  if (!loaded) return EXIT.FAILED;
  const { config } = loaded;
  const store = openStore(config, env);
  try {
    await store.migrate();
    return await fn(store, config);
  } catch (e) {
    out.err(`keygate: ${isKeygateError(e) ? e.publicMessage : (e as Error).message}`);
    return EXIT.FAILED;
  } finally {
    await store.close();
  }
}

function withEnrollment(
  file: string | undefined,
  out: Output,
  env: NodeJS.ProcessEnv,
  fn: (e: Enrollment, origin: string, store: Store) => Promise<void>,
): Promise<number> {
  return withLocalStore(file, out, env, async (store, config) => {
    await fn(new Enrollment(store, systemClock, config.enrollment.tokenLifetime), publicOriginOf(config), store);
    return EXIT.OK;
  });
}

export async function adminInvite(
  email: string,
  o: { role?: string[]; name?: string; config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (!isEmail(email)) {
    out.err(`keygate: not an email address: ${email}`);
    return EXIT.USAGE;
  }
  return withEnrollment(o.config, out, env, async (e, origin, store) => {
    const link = await e.invite(origin, {
      email,
      roles: o.role ?? [],
      createdBy: 'cli',
      ...(o.name === undefined ? {} : { displayName: o.name }),
    });
    await recordCliChange(store, 'admin invite', {
      op: 'invitation.create',
      target: `user:${link.user.id}`,
      after: { email: link.user.email, roles: o.role ?? [], expiresAt: link.expiresAt },
    });
    out.out(link.url);
    out.err(`One-time enrollment link for ${link.user.email}, valid until ${new Date(link.expiresAt).toISOString()}.`);
  });
}

export async function adminRecover(
  email: string,
  o: { config?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return withEnrollment(o.config, out, env, async (e, origin, store) => {
    const link = await e.recover(origin, email, 'cli');
    await recordCliChange(store, 'admin recover', {
      op: 'recovery_link.create',
      target: `user:${link.user.id}`,
      after: { email: link.user.email, expiresAt: link.expiresAt },
    });
    out.out(link.url);
    out.err(
      `One-time recovery link for ${link.user.email}, valid until ${new Date(link.expiresAt).toISOString()}. ` +
        'It lets them register a new key; it revokes nothing by itself.',
    );
  });
}
