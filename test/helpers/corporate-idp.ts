/**
 * A corporate identity provider for tests: a real oidc-provider instance on 127.0.0.1 with
 * people, their groups and the `amr`/`acr` their logins report. Logins need no form: the test
 * says who logs in next (`loginAs`). For negative tests the token endpoint's ID token can be
 * re-signed with a wrong issuer or nonce (`tamper`), with the provider's own key, so only the
 * claim is wrong.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import Provider from 'oidc-provider';

export interface CorporateUser {
  sub: string;
  email: string;
  name: string;
  groups: string[];
  amr?: string[];
  acr?: string;
  emailVerified?: boolean;
}

export interface CorporateIdp {
  issuer: string;
  /** Who logs in at the next authorization request. */
  loginAs(sub: string): void;
  setGroups(sub: string, groups: string[]): void;
  /** Remove the person: their refresh tokens stop working. */
  remove(sub: string): void;
  /** Re-sign the next ID token from the token endpoint with this claim changed. */
  tamper(claims: Record<string, unknown> | null): void;
  close(): Promise<void>;
}

/** A client at the provider: with a secret (client_secret_basic), or with public keys (private_key_jwt). */
export type CorporateClient =
  | { client_id: string; client_secret: string; redirect_uris: string[] }
  | { client_id: string; jwks: { keys: JWK[] }; redirect_uris: string[] };

export async function startCorporateIdp(o: {
  clients: CorporateClient[];
  users: CorporateUser[];
}): Promise<CorporateIdp> {
  const users = new Map(o.users.map((u) => [u.sub, { ...u }]));
  let next: string | undefined;
  let tampering: Record<string, unknown> | null = null;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'corp-1', alg: 'RS256', use: 'sig' };

  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(issuer, {
    clients: o.clients.map((c) => ({
      ...c,
      ...('jwks' in c
        ? { token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256' }
        : {}),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    })),
    jwks: { keys: [jwk] },
    cookies: { keys: ['corporate-idp-test-cookie-key'] },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    claims: {
      // Released with every ID token, as Okta, Entra ID and Keycloak do (what trust-idp-mfa reads).
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Claims in the ID token itself, as Okta and Entra put them.
    conformIdTokenClaims: false,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => {
      const u = users.get(sub);
      if (u === undefined) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          email: u.email,
          email_verified: u.emailVerified ?? true,
          name: u.name,
          groups: u.groups,
        }),
      };
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
  });
  // The provider's own errors are expected in negative tests; keep the test output quiet.
  provider.on('server_error', () => {});

  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res);
    const sub = next ?? '';
    const u = users.get(sub);
    if (details.prompt.name === 'login') {
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: sub, ...(u?.amr ? { amr: u.amr } : {}), ...(u?.acr ? { acr: u.acr } : {}) } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    const grant = new provider.Grant({ accountId: sub, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope));
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups']);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  };

  /** The token endpoint's answer with the ID token re-signed (one claim changed), when asked to. */
  const tamperedToken = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    const end = res.end.bind(res);
    res.write = ((c: Buffer | string) => {
      chunks.push(Buffer.from(c));
      return true;
    }) as typeof res.write;
    res.end = ((c?: Buffer | string) => {
      if (c !== undefined && typeof c !== 'function') chunks.push(Buffer.from(c));
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { id_token?: string };
      const change = tampering;
      tampering = null;
      if (body.id_token === undefined || change === null) {
        const raw = Buffer.concat(chunks);
        res.setHeader('content-length', raw.length);
        return end(raw);
      }
      void (async () => {
        const claims = { ...decodeJwt(body.id_token as string), ...change };
        body.id_token = await new SignJWT(claims)
          .setProtectedHeader({ alg: 'RS256', kid: 'corp-1' })
          .sign(await importJWK(jwk, 'RS256'));
        const raw = Buffer.from(JSON.stringify(body));
        res.setHeader('content-length', raw.length);
        end(raw);
      })();
      return res;
    }) as typeof res.end;
    provider.callback()(req, res);
  };

  const handler = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url.startsWith('/interaction/')) {
      interaction(req, res).catch((e: unknown) => {
        res.statusCode = 500;
        res.end(String(e));
      });
      return;
    }
    if (url.startsWith('/token') && req.method === 'POST' && tampering !== null) {
      tamperedToken(req, res);
      return;
    }
    handler(req, res);
  });

  return {
    issuer,
    loginAs: (sub) => {
      next = sub;
    },
    setGroups: (sub, groups) => {
      const u = users.get(sub);
      if (u) u.groups = groups;
    },
    remove: (sub) => {
      users.delete(sub);
    },
    tamper: (claims) => {
      tampering = claims;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
