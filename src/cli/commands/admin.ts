/**
 * `keygate admin …` against the local store: works before any admin exists (bootstrap).
 * `invite` prints a one-time enrollment URL; `recover` a one-time recovery URL.
 */
import { Enrollment, isEmail } from '../../authenticate/enrollment.js';
import type { Config } from '../../config/schema.js';
import { systemClock } from '../../lib/clock.js';
import { SqliteStore } from '../../store/sqlite/index.js';
import { EXIT, type Output } from '../output.js';
import { loadOrReport } from './serve.js';

export function publicOriginOf(config: Config): string {
  if (config.publicUrl !== undefined) return new URL(config.publicUrl).origin;
  return `${config.tls ? 'https' : 'http'}://localhost:${config.listen.port}`;
}

async function withEnrollment(
  file: string | undefined,
  out: Output,
  env: NodeJS.ProcessEnv,
  fn: (e: Enrollment, origin: string) => Promise<void>,
): Promise<number> {
  const loaded = loadOrReport(file, out, env);
  if (!loaded) return EXIT.FAILED;
  const { config } = loaded;
  const store = new SqliteStore({ path: config.store.path ?? `${config.dataDir}/keygate.db` });
  try {
    await store.migrate();
    await fn(new Enrollment(store, systemClock, config.enrollment.tokenLifetime), publicOriginOf(config));
    return EXIT.OK;
  } finally {
    await store.close();
  }
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
  return withEnrollment(o.config, out, env, async (e, origin) => {
    const link = await e.invite(origin, {
      email,
      roles: o.role ?? [],
      createdBy: 'cli',
      ...(o.name === undefined ? {} : { displayName: o.name }),
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
  try {
    return await withEnrollment(o.config, out, env, async (e, origin) => {
      const link = await e.recover(origin, email, 'cli');
      out.out(link.url);
      out.err(
        `One-time recovery link for ${link.user.email}, valid until ${new Date(link.expiresAt).toISOString()}. ` +
          'It lets them register a new key; it revokes nothing by itself.',
      );
    });
  } catch (err) {
    out.err(`keygate: ${(err as Error).message}`);
    return EXIT.FAILED;
  }
}
