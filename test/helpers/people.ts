/** Enrollment and login through the real HTTP API, with a software authenticator. */
import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import type { AuthEventRecord } from '../../src/store/types.js';
import { BrowserClient, type JsonResponse } from './browser-client.js';
import type { TestGateway } from './index.js';
import { type BendOptions, SoftAuthenticator } from './soft-authenticator.js';

export function browserFor(g: TestGateway): BrowserClient {
  return new BrowserClient(g.url, g.gw.publicOrigin);
}

export async function invite(g: TestGateway, email: string, roles: string[] = []): Promise<string> {
  const link = await g.gw.auth.enrollment.invite(g.gw.publicOrigin, { email, roles, createdBy: 'test' });
  return link.token;
}

export async function enroll(
  g: TestGateway,
  email: string,
  opts: { authenticator?: SoftAuthenticator; browser?: BrowserClient; bend?: BendOptions; token?: string } = {},
): Promise<{
  browser: BrowserClient;
  authenticator: SoftAuthenticator;
  result: JsonResponse<Record<string, unknown>>;
}> {
  const browser = opts.browser ?? browserFor(g);
  const authenticator = opts.authenticator ?? new SoftAuthenticator(g.gw.publicOrigin);
  const token = opts.token ?? (await invite(g, email));
  const options = await browser.post<PublicKeyCredentialCreationOptionsJSON>(
    '/.keygate/api/webauthn/registration/options',
    { enrollmentToken: token },
  );
  if (options.status !== 200)
    throw new Error(`registration options: ${options.status} ${JSON.stringify(options.body)}`);
  const response = authenticator.create(options.body, opts.bend);
  const result = await browser.post<Record<string, unknown>>('/.keygate/api/webauthn/registration/verify', {
    response,
    enrollmentToken: token,
    name: 'Test key',
  });
  return { browser, authenticator, result };
}

export async function loginOptions(
  browser: BrowserClient,
  email?: string,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const r = await browser.post<PublicKeyCredentialRequestOptionsJSON>(
    '/.keygate/api/webauthn/authentication/options',
    email === undefined ? {} : { email },
  );
  if (r.status !== 200) throw new Error(`authentication options: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function login(
  browser: BrowserClient,
  authenticator: SoftAuthenticator,
  opts: { email?: string; bend?: BendOptions; returnTo?: string } = {},
): Promise<JsonResponse<Record<string, unknown>>> {
  const options = await loginOptions(browser, opts.email);
  const response = authenticator.get(options, opts.bend);
  return browser.post('/.keygate/api/webauthn/authentication/verify', {
    response,
    ...(opts.returnTo === undefined ? {} : { returnTo: opts.returnTo }),
  });
}

export async function lastAuthEvent(g: TestGateway): Promise<AuthEventRecord> {
  const [e] = await g.gw.store.listAuthEvents({ limit: 1 });
  if (!e) throw new Error('no auth event');
  return e;
}
