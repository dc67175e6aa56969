/**
 * The one schema for keygate.yaml. Unknown keys fail, every error names its path, and the
 * editor JSON Schema and docs/configuration.md are generated from this file
 * (scripts/gen-config-docs.ts; a test fails when they are stale). Defaults live next to
 * their definition, with a description that ends up in the docs.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ACTION_NAMES, isSensitive } from '../authorize/actions.js';
import { parseDuration, parseSize } from './units.js';

const duration = (def: string) =>
  z
    .union([z.number(), z.string()])
    .default(def)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a duration such as 500ms, 30s, 5m or 1h' });
        return z.NEVER;
      }
      return ms;
    });

const size = (def: string) =>
  z
    .union([z.number(), z.string()])
    .default(def)
    .transform((v, ctx) => {
      const bytes = parseSize(v);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a size such as 512KiB, 200MB or 1GiB' });
        return z.NEVER;
      }
      return bytes;
    });

const httpUrl = z.string({ error: 'must be a URL' }).refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}, 'must be a URL (http or https, without credentials)');

const ipOrCidr = z.string().refine((s) => {
  const [addr, bits, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined) return false;
  const v = isIP(addr);
  if (v === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return Number.isInteger(n) && n >= 0 && n <= (v === 4 ? 32 : 128);
}, 'must be an IP address or CIDR range such as 10.0.0.0/8');

const roleName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'role names are lowercase letters, digits and -');

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

const staticCredential = z
  .strictObject({
    type: z.literal('static'),
    tokenEnv: envName.optional().describe('Environment variable holding the upstream token.'),
    tokenFile: z
      .string()
      .optional()
      .describe('File holding the upstream token; re-read when it changes (rotation without restart).'),
  })
  .refine((c) => (c.tokenEnv === undefined) !== (c.tokenFile === undefined), {
    message: 'set exactly one of tokenEnv or tokenFile',
  })
  .describe('A fixed upstream token (a workspace service principal PAT).');

const m2mCredential = z
  .strictObject({
    type: z.literal('databricks-m2m'),
    clientId: z.string().min(1).describe('OAuth client id of the workspace service principal.'),
    clientSecretEnv: envName.optional().describe('Environment variable holding the client secret.'),
    clientSecretFile: z.string().optional().describe('File holding the client secret.'),
    tokenUrl: httpUrl.optional().describe('Token endpoint; default `<upstream url>/oidc/v1/token`.'),
    scope: z.string().default('all-apis').describe('OAuth scope requested.'),
  })
  .refine((c) => (c.clientSecretEnv === undefined) !== (c.clientSecretFile === undefined), {
    message: 'set exactly one of clientSecretEnv or clientSecretFile',
  })
  .describe('OAuth client credentials at the workspace token endpoint, cached until shortly before expiry.');

/** JWT registered claims a policy's subject claim must not be: they mean something else. */
const REGISTERED_CLAIMS = new Set(['iss', 'aud', 'exp', 'nbf', 'iat', 'jti']);

const federationCredential = z
  .strictObject({
    type: z.literal('databricks-federation'),
    audience: z
      .string()
      .min(1)
      .optional()
      .describe(
        "`aud` of the JWTs Keygate signs for the exchange; enter it in the federation policy's audiences. Default `<upstream url>/oidc/v1/token` (what the Databricks SDKs use). Must differ from every upstream URL and from publicUrl, the audiences of Keygate's other tokens.",
      ),
    subjectClaim: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/, 'must be a JWT claim name')
      .refine((c) => !REGISTERED_CLAIMS.has(c), 'must not be iss, aud, exp, nbf, iat or jti')
      .default('sub')
      .describe(
        "The policy's subject claim. It holds a person's email (their workspace user name); `sub` always holds it too.",
      ),
    tokenUrl: httpUrl.optional().describe('Workspace token endpoint; default `<upstream url>/oidc/v1/token`.'),
    scope: z.string().default('all-apis').describe('OAuth scope requested in the exchange.'),
    jwtLifetime: duration('5m').describe(
      'Lifetime of each signed JWT, and so of the workspace token it buys (the workspace never issues a longer one). 2m to 1h; a token is used until 60 s before it expires.',
    ),
    servicePrincipals: z
      .array(
        z.strictObject({
          keygateId: z
            .string()
            .min(1)
            .describe("The Keygate service principal's client id (from `keygate admin sp create`): the JWT's subject."),
          clientId: z
            .string()
            .min(1)
            .describe(
              "The workspace service principal's application id, whose federation policy names `keygateId` as its subject.",
            ),
        }),
      )
      .default([])
      .describe(
        'Keygate service principals and the workspace service principals they act as. Unlisted ones get 403 UPSTREAM_IDENTITY_UNMAPPED.',
      ),
    probeUser: z
      .string()
      .regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address')
      .optional()
      .describe(
        'A workspace user (a break-glass or service account) that `keygate config check --probe` exchanges a token for, and that Keygate exchanges for when a refusal must be told apart: a policy mismatch (502) from a person unknown to the workspace (403). The token obtained is discarded.',
      ),
    cacheSize: z
      .int()
      .min(1)
      .max(1_000_000)
      .default(10_000)
      .describe(
        'Most people (and, separately, service principals) whose workspace tokens are kept; the least recently used go first.',
      ),
    dangerouslyFallBackToServicePrincipal: z
      .strictObject({
        clientId: z.string().min(1).describe('OAuth client id of the shared workspace service principal.'),
        clientSecretEnv: envName.optional().describe('Environment variable holding its client secret.'),
        clientSecretFile: z.string().optional().describe('File holding its client secret.'),
        tokenUrl: httpUrl.optional().describe('Token endpoint; default that of the federation.'),
        scope: z.string().default('all-apis').describe('OAuth scope requested.'),
      })
      .refine((c) => (c.clientSecretEnv === undefined) !== (c.clientSecretFile === undefined), {
        message: 'set exactly one of clientSecretEnv or clientSecretFile',
      })
      .optional()
      .describe(
        "When the exchange fails (an unknown person, a policy mismatch, an unmapped caller), send the request as this shared service principal instead of refusing it. The workspace then sees the service principal, not the person, with the service principal's permissions; the audit record names it and the failure. Off by default; a warning is logged at every start.",
      ),
  })
  .refine((c) => c.jwtLifetime >= 120_000 && c.jwtLifetime <= 3_600_000, {
    path: ['jwtLifetime'],
    message: 'must be between 2m and 1h',
  })
  .describe(
    'Per-user token federation (RFC 8693): Keygate signs a short-lived JWT for each caller and exchanges it at the workspace token endpoint, so the workspace sees the real person. See docs/guides/databricks-federation.md.',
  );

const noCredential = z
  .strictObject({ type: z.literal('none') })
  .describe('Send no upstream credential (an upstream that trusts the identity assertion alone).');

export const credentialSchema = z.discriminatedUnion(
  'type',
  [staticCredential, m2mCredential, federationCredential, noCredential],
  { error: 'must have type static, databricks-m2m, databricks-federation or none' },
);

export const upstreamSchema = z.strictObject({
  url: httpUrl.describe('Base URL of the upstream (a Databricks workspace, or any HTTP ML API).'),
  preset: z
    .enum(['databricks', 'generic'])
    .default('databricks')
    .describe('How routes are classified into actions (DESIGN.md §5).'),
  credential: credentialSchema.describe('Where the upstream credential comes from. Clients never see it.'),
  timeouts: z
    .strictObject({
      connect: duration('5s').describe('Time to establish a connection to the upstream.'),
      headers: duration('60s').describe('Time until the upstream sends response headers.'),
      body: duration('5m').describe('Longest silence between two chunks of the response body.'),
    })
    .prefault({})
    .describe('Upstream timeouts; exceeding one gives 504 UPSTREAM_TIMEOUT.'),
  rules: z
    .array(
      z.strictObject({
        prefix: z
          .string()
          .startsWith('/', 'must start with /')
          .describe('Path prefix (whole segments, case-insensitive).'),
        methods: z.array(z.string().regex(/^[A-Za-z]+$/, 'must be an HTTP method')).optional(),
        action: z.enum(['api:read', 'api:invoke', 'api:manage']),
      }),
    )
    .default([])
    .describe(
      'Generic preset: prefix and method → action on Api::<upstream name>. Default: reads api:read, POST api:invoke, other api:manage.',
    ),
  maxRequestBodyBytes: size('256MiB').describe('Largest request body forwarded; larger gets 413.'),
  connections: z.int().min(1).max(4096).default(128).describe('Keep-alive connections in the upstream pool.'),
});

/** A corporate identity provider people log in through (OIDC), before or instead of a local key. */
export const identityProvider = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a short lower-case name such as okta')
      .describe('Short name used in URLs (`/.keygate/idp/<name>/…`) and in the audit log.'),
    displayName: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .describe('Shown on the login button: "Continue with <displayName>".'),
    preset: z
      .enum(['generic', 'okta', 'entra', 'google', 'keycloak'])
      .default('generic')
      .describe('Usual scopes and claim names of that provider (each can still be set below).'),
    issuer: httpUrl.describe(
      "The provider's issuer URL; discovery is read from `<issuer>/.well-known/openid-configuration`.",
    ),
    clientId: z.string().min(1).describe("Keygate's client id at the provider."),
    clientSecretEnv: envName
      .optional()
      .describe('Environment variable holding the client secret (client_secret_basic).'),
    privateKeyFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A private key (PKCS#8 PEM, EC P-256 or RSA) to authenticate with private_key_jwt instead of a secret.',
      ),
    scopes: z
      .array(z.string().min(1))
      .optional()
      .describe('Scopes asked for; default by preset (`openid email profile`, plus `groups` for Okta).'),
    claims: z
      .strictObject({
        email: z.string().min(1).optional().describe('Claim holding the email address.'),
        name: z.string().min(1).optional().describe('Claim holding the display name.'),
        groups: z.string().min(1).optional().describe('Claim holding the list of groups.'),
      })
      .prefault({})
      .describe('Claim names; default by preset (Entra: `preferred_username` for the email, `groups`).'),
    mode: z
      .enum(['require-local-key', 'trust-idp-mfa'])
      .default('require-local-key')
      .describe(
        "`require-local-key`: after the provider, the person also taps a key registered to them (the first time, the provider login lets them enroll one). `trust-idp-mfa`: accept the provider's own phishing-resistant MFA, shown by `amr` or `acr`.",
      ),
    acceptedAmr: z
      .array(z.string().min(1))
      .default(['hwk', 'fido', 'phr', 'phrh'])
      .describe("trust-idp-mfa: the ID token's `amr` must contain one of these (RFC 8176 values)."),
    acceptedAcr: z.array(z.string().min(1)).default([]).describe('trust-idp-mfa: or its `acr` must be one of these.'),
    enrollment: z
      .enum(['open', 'pre-approved'])
      .default('open')
      .describe(
        'require-local-key, first login: `open` lets anyone the provider vouches for enroll a key; `pre-approved` only people Keygate knows already (invited or provisioned by SCIM) or in `enrollGroups`.',
      ),
    enrollGroups: z
      .array(z.string().min(1))
      .default([])
      .describe('pre-approved enrollment: members of these provider groups may enroll a key on first login.'),
    groupsTtl: duration('5m').describe(
      "How long the provider's groups are trusted after a login; then they are refreshed with the provider's refresh token, or dropped until the next login.",
    ),
  })
  .refine((p) => !(p.clientSecretEnv !== undefined && p.privateKeyFile !== undefined), {
    message: 'set at most one of clientSecretEnv and privateKeyFile',
  });

/** One workload federation trust: in keygate.yaml (tokens.federation) or made through the admin API. */
export const federationTrust = z.strictObject({
  name: z.string().min(1).describe('A label for logs and audit.'),
  issuer: z
    .url()
    .describe('The `iss` the platform puts in its tokens, e.g. https://token.actions.githubusercontent.com.'),
  jwksUrl: z
    .url()
    .optional()
    .describe(
      "Where the issuer's public keys (JWKS) are, e.g. https://token.actions.githubusercontent.com/.well-known/jwks.",
    ),
  jwks: z
    .strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
    .optional()
    .describe('Inline public keys instead of a URL.'),
  audience: z.string().min(1).describe('The `aud` the token must carry.'),
  subject: z
    .string()
    .min(1)
    .describe('The `sub` required; `*` matches any run of characters, e.g. repo:acme/ml:ref:refs/heads/*.'),
  servicePrincipal: z.string().min(1).describe('Name or id of the service principal the token is exchanged for.'),
});

export const configSchema = z
  .strictObject({
    publicUrl: httpUrl
      .optional()
      .describe(
        'The one browser origin: WebAuthn RP ID, cookie scope and OAuth issuer derive from it. Default `http://localhost:<port>`.',
      ),
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1').describe('Address to listen on.'),
        port: z.int().min(0).max(65535).default(8443).describe('Port to listen on (0 = any free port).'),
      })
      .prefault({})
      .describe('Where Keygate listens.'),
    tls: z
      .strictObject({
        certFile: z.string().min(1).describe('PEM certificate chain; re-read when it changes.'),
        keyFile: z.string().min(1).describe('PEM private key; re-read when it changes.'),
      })
      .optional()
      .describe('Terminate TLS in Keygate. Omit when a load balancer in front terminates it.'),
    trustedProxies: z
      .array(ipOrCidr)
      .default([])
      .describe('Load balancers whose X-Forwarded-For is believed. From anyone else it is ignored.'),
    dataDir: z.string().min(1).default('./.keygate').describe('Folder for the embedded database and local state.'),
    store: z
      .strictObject({
        driver: z
          .enum(['sqlite', 'postgres'])
          .default('sqlite')
          .describe('Storage engine: `sqlite` (embedded, one process) or `postgres` (several replicas share it).'),
        path: z.string().optional().describe('SQLite file; default `<dataDir>/keygate.db`.'),
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
          .optional()
          .describe('PostgreSQL connection URL (without the password: put that in `urlEnv`, or in PGPASSWORD).'),
        urlEnv: envName
          .optional()
          .describe('Environment variable holding the whole PostgreSQL connection URL (when it carries a password).'),
        poolSize: z.int().min(1).max(200).default(20).describe('PostgreSQL connections per replica.'),
      })
      .refine((s) => s.driver !== 'postgres' || (s.url === undefined) !== (s.urlEnv === undefined), {
        message: 'driver postgres needs exactly one of url and urlEnv',
      })
      .prefault({})
      .describe('Where state lives: users, credentials, sessions, keys, audit.'),
    log: z
      .strictObject({
        level: z
          .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
          .default('info')
          .describe('Least severe level written (JSON lines on stdout).'),
        requests: z
          .boolean()
          .default(false)
          .describe(
            'Also log one line per successful proxied request (refusals and errors are always logged). Off by default: it is the largest per-request cost, and the audit log is the per-request record.',
          ),
      })
      .prefault({})
      .describe('Structured logs. Secrets are redacted; the audit log is the durable record.'),
    upstreams: z
      .record(
        z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'upstream names are lowercase letters, digits and -'),
        upstreamSchema,
      )
      .default({})
      .describe('Named upstream services.'),
    routes: z
      .array(
        z.strictObject({
          prefix: z.string().startsWith('/', 'must start with /').describe('Path prefix that selects the upstream.'),
          upstream: z.string().describe('Name of an entry in `upstreams`.'),
        }),
      )
      .default([])
      .describe('Path prefix → upstream, longest prefix first. Default with one upstream: everything goes to it.'),
    webauthn: z
      .strictObject({
        rpName: z.string().min(1).default('Keygate').describe('Relying-party name shown by authenticators.'),
        rpId: z
          .string()
          .optional()
          .describe(
            'WebAuthn RP ID; default the host name of publicUrl. Must be a registrable suffix of every origin.',
          ),
        origins: z
          .array(httpUrl)
          .default([])
          .describe('Origins allowed in ceremonies; default the origin of publicUrl.'),
        userVerification: z
          .enum(['required', 'preferred', 'discouraged'])
          .default('required')
          .describe('Whether a PIN or biometric must be verified by the authenticator, not just presence.'),
        residentKey: z
          .enum(['required', 'preferred', 'discouraged'])
          .default('preferred')
          .describe('Ask for discoverable credentials (passkeys: log in without typing an email).'),
        attestation: z
          .enum(['none', 'direct'])
          .default('none')
          .describe('`direct` verifies the attestation statement (packed, tpm, android-key, apple, fido-u2f).'),
        aaguidAllowList: z
          .array(
            z
              .string()
              .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a lowercase AAGUID'),
          )
          .default([])
          .describe('Only these authenticator models may register (empty: any).'),
        allowSyncedPasskeys: z
          .boolean()
          .default(true)
          .describe('Allow credentials that are backed up to a cloud account (synced passkeys).'),
        challengeTimeout: duration('5m').describe('How long a ceremony challenge stays valid.'),
        mdsBlobFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            'A FIDO Metadata Service (MDS3) BLOB file you download; verified at start. Models it reports revoked or compromised cannot register.',
          ),
        mdsRootCertFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            'PEM root certificate for the BLOB; default the FIDO Alliance root shipped with @simplewebauthn/server.',
          ),
      })
      .prefault({})
      .describe('WebAuthn (security keys, passkeys, platform authenticators).'),
    sessions: z
      .strictObject({
        idleTimeout: duration('1h').describe('A session unused this long ends.'),
        absoluteLifetime: duration('12h').describe('A session ends this long after login, used or not.'),
        freshAuthWindow: duration('5m').describe('Adding a credential needs a login at most this old.'),
      })
      .prefault({})
      .describe('Browser sessions (server-side; the cookie holds only a random id).'),
    enrollment: z
      .strictObject({
        tokenLifetime: duration('24h').describe('How long an enrollment or recovery link stays valid.'),
      })
      .prefault({})
      .describe('One-time enrollment and recovery links.'),
    secretKeyEnv: envName
      .optional()
      .describe(
        "Environment variable holding a 32-byte key (base64) that seals secrets Keygate keeps in its store: identity providers' refresh tokens. Without it none are kept, and a provider's groups lapse after `groupsTtl` until the next login.",
      ),
    identityProviders: z
      .array(identityProvider)
      .default([])
      .describe(
        'Corporate identity providers (OIDC: Okta, Entra ID, Google, Keycloak, …). The login page offers "Continue with <provider>"; the groups they assert count as the person\'s groups (docs/guides/identity-providers.md).',
      ),
    rateLimits: z
      .strictObject({
        perIpPerMinute: z
          .int()
          .min(1)
          .default(60)
          .describe('Login and enrollment calls per client address per minute.'),
        perAccountPerMinute: z
          .int()
          .min(1)
          .default(10)
          .describe('Login attempts per account (email or credential) per minute.'),
        apiPerIpPerMinute: z
          .int()
          .min(1)
          .default(600)
          .describe(
            "Calls to Keygate's other APIs (devices, session, admin, step-up approvals) per client address per minute.",
          ),
      })
      .prefault({})
      .describe('Limits on login and enrollment (429 with Retry-After; windows expire, accounts never lock).'),
    authorization: z
      .strictObject({
        stepUpMaxAge: duration('5m').describe(
          'Sensitive actions need a user-verified login at most this old; older gets a step-up challenge (RFC 9470).',
        ),
        bindings: z
          .array(
            z.union([
              z.strictObject({
                group: z.string().min(1).describe('An identity-provider or local group.'),
                roles: z.array(roleName).min(1),
              }),
              z.strictObject({
                user: z.string().min(1).describe('A user, by email.'),
                roles: z.array(roleName).min(1),
              }),
            ]),
          )
          .default([])
          .describe('Who holds which roles: a group or a user, bound to roles.'),
        roles: z
          .record(
            roleName,
            z.strictObject({
              description: z.string().default(''),
              grants: z
                .array(
                  z.strictObject({
                    actions: z.array(z.enum(['*', ...ACTION_NAMES])).min(1),
                    resources: z
                      .array(
                        z
                          .string()
                          .regex(
                            /^(\*|(Workspace|Endpoint|Model|Job|Api|Keygate)::[^"\\]+)$/,
                            'must be "*" or Type::name (Endpoint, Model, Job, Api, Workspace, Keygate; * is a wildcard)',
                          ),
                      )
                      .default(['*']),
                  }),
                )
                .min(1),
            }),
          )
          .default({})
          .describe(
            'Extra roles, or replacements for the shipped ml-reader, ml-inference, ml-engineer, ml-deployer, admin.',
          ),
        policyFiles: z
          .array(z.string().min(1))
          .default([])
          .describe('Cedar policy files for what roles cannot say; validated against the schema at start.'),
        deviceBoundActions: z
          .array(z.enum(['*', ...ACTION_NAMES]))
          .default(ACTION_NAMES.filter(isSensitive))
          .describe(
            "Actions a person may do with an access token only when it is DPoP-bound (the CLI's own tokens, `keygate proxy`); a plain bearer token (`keygate token`, DATABRICKS_TOKEN) is refused for them. Browser sessions are not tokens. Default: the sensitive actions.",
          ),
        dangerouslyAllowCredentialMinting: z
          .boolean()
          .default(false)
          .describe('Let policies allow minting long-lived upstream credentials (PATs). Off: always denied.'),
      })
      .prefault({})
      .describe('Who may do what: roles from groups, compiled to Cedar, plus raw Cedar policies.'),
    tokens: z
      .strictObject({
        peopleAccessTokenLifetime: duration('10m').describe("Lifetime of a person's access token (CLI, SDK)."),
        machineAccessTokenLifetime: duration('15m').describe("Lifetime of a service principal's access token."),
        refreshLifetime: duration('12h').describe(
          'A refresh-token family ends this long after the login that started it; then the person must tap again.',
        ),
        signingKeyRotation: duration('30d').describe(
          'Token signing keys are replaced this often; old public keys stay published until their tokens expire.',
        ),
        secretLifetime: duration('90d').describe('Default lifetime of a service principal secret.'),
        deviceCodeLifetime: duration('10m').describe('How long a device-login code (RFC 8628) can be approved.'),
        federation: z
          .array(federationTrust)
          .default([])
          .describe(
            "Workload identity federation (RFC 8693): platform tokens exchanged for a service principal's token.",
          ),
      })
      .prefault({})
      .describe('The built-in OAuth authorization server: token lifetimes, signing keys, workload federation.'),
    agents: z
      .strictObject({
        maxGrantLifetime: duration('24h').describe(
          'The longest a person may delegate to an agent (`keygate agent grant --ttl`).',
        ),
        approvalActions: z
          .array(z.enum(['*', ...ACTION_NAMES]))
          .default(ACTION_NAMES.filter(isSensitive))
          .describe(
            "Actions an agent's request is held for: its person approves that exact request with a key tap before it is forwarded. Default: the sensitive actions.",
          ),
        approvalLifetime: duration('10m').describe('How long a held request can be approved, and then used (once).'),
        webhook: z
          .strictObject({
            url: z.url().describe('Where each new approval is POSTed (JSON), e.g. a chat tool.'),
            secretEnv: z
              .string()
              .min(1)
              .describe('Environment variable holding the HMAC-SHA256 key for `X-Keygate-Signature`.'),
          })
          .optional()
          .describe('Announce approvals to a webhook, signed.'),
      })
      .prefault({})
      .describe('AI agents acting for people: delegation grants, and approval of one exact request.'),
    audit: z
      .strictObject({
        path: z
          .string()
          .min(1)
          .optional()
          .describe(
            "The audit chain's SQLite file (default <dataDir>/audit.db); ':memory:' keeps it in memory (tests only).",
          ),
        failOpen: z
          .boolean()
          .default(false)
          .describe(
            'Serve requests even when the audit log cannot record them (writer failing or too far behind). Off: such requests get 503. Turning it on is logged loudly at start.',
          ),
        maxQueue: z
          .int()
          .min(100)
          .default(100_000)
          .describe('Records that may wait for the writer before new requests are refused.'),
        flushInterval: duration('10ms').describe('Longest a record waits before its batch is committed.'),
        batchMax: z.int().min(1).max(100_000).default(5_000).describe('Most records in one committed batch.'),
        checkpointEvery: z.int().min(1).default(10_000).describe('A signed checkpoint after this many records…'),
        checkpointInterval: duration('60s').describe('…or after this long, whichever comes first.'),
        busyTimeout: duration('5s').describe(
          'How long a batch waits for a lock on the audit file before the write counts as failed.',
        ),
        retention: z
          .union([z.number(), z.string()])
          .optional()
          .transform((v, ctx) => {
            if (v === undefined) return undefined;
            const ms = parseDuration(v);
            if (ms === undefined || ms < 3_600_000) {
              ctx.addIssue({ code: 'custom', message: 'must be a duration of at least 1h, such as 400d' });
              return z.NEVER;
            }
            return ms;
          })
          .describe(
            'Keep records this long (e.g. 400d); older ones are pruned up to a signed checkpoint, which anchors the chain so it still verifies. Unset: keep everything.',
          ),
        pruneInterval: duration('1h').describe(
          'How often records past the retention are pruned (and once 10 s after start).',
        ),
        sinks: z
          .strictObject({
            file: z
              .strictObject({
                path: z
                  .string()
                  .min(1)
                  .describe('JSON Lines file; each line a committed record as `keygate audit export` writes it.'),
                maxSize: size('100MiB').describe(
                  'Rotate when the file would grow past this (to <path>.1, <path>.2, …).',
                ),
                keep: z.int().min(1).max(1000).default(5).describe('Rotated files kept.'),
              })
              .optional()
              .describe(
                'A copy of the log for a SIEM to tail. It resumes after its last line at start, so a crash leaves no gap.',
              ),
            stdout: z
              .boolean()
              .default(false)
              .describe('Also write each committed record to standard output, one JSON line each.'),
          })
          .prefault({})
          .describe('Copies of committed records for an existing SIEM; the chain in SQLite stays the record of truth.'),
      })
      .prefault({})
      .describe('The tamper-evident audit log: one record per proxied request and per authentication event.'),
    shutdown: z
      .strictObject({
        drainTimeout: duration('30s').describe('How long SIGTERM waits for in-flight requests.'),
      })
      .prefault({})
      .describe('Graceful shutdown on SIGTERM.'),
    limits: z
      .strictObject({
        maxHeaderBytes: size('16KiB').describe('Largest request header block; larger gets 431.'),
        headersTimeout: duration('10s').describe(
          'Longest a client may take to send the request line and headers (slowloris); then 408 and the connection closes.',
        ),
        requestTimeout: duration('5m').describe('Longest a client may take to send a whole request.'),
        keepAliveTimeout: duration('30s').describe(
          'How long an idle keep-alive client connection is kept open after its last response.',
        ),
      })
      .prefault({})
      .describe('Limits on what clients send.'),
  })
  .superRefine((c, ctx) => {
    const known = new Set([
      ...Object.keys(c.authorization.roles),
      'ml-reader',
      'ml-inference',
      'ml-engineer',
      'ml-deployer',
      'admin',
    ]);
    c.authorization.bindings.forEach((b, i) => {
      b.roles.forEach((r, j) => {
        if (!known.has(r)) {
          ctx.addIssue({
            code: 'custom',
            path: ['authorization', 'bindings', i, 'roles', j],
            message: `unknown role "${r}"`,
          });
        }
      });
    });
    c.routes.forEach((r, i) => {
      if (!(r.upstream in c.upstreams)) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'upstream'], message: `unknown upstream "${r.upstream}"` });
      }
    });
    const pub = new URL(c.publicUrl ?? 'http://localhost');
    const rpId = c.webauthn.rpId ?? pub.hostname;
    const origins = c.webauthn.origins.length > 0 ? c.webauthn.origins : [pub.origin];
    origins.forEach((o, i) => {
      const host = new URL(o).hostname;
      if (host !== rpId && !host.endsWith(`.${rpId}`)) {
        ctx.addIssue({
          code: 'custom',
          path: c.webauthn.origins.length > 0 ? ['webauthn', 'origins', i] : ['webauthn', 'rpId'],
          message: `RP ID "${rpId}" is not a registrable suffix of ${host}`,
        });
      }
    });
    const idpNames = new Set<string>();
    c.identityProviders.forEach((p, i) => {
      if (idpNames.has(p.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['identityProviders', i, 'name'],
          message: `duplicate provider name "${p.name}"`,
        });
      }
      idpNames.add(p.name);
    });
    const trustNames = new Set<string>();
    c.tokens.federation.forEach((t, i) => {
      if (trustNames.has(t.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tokens', 'federation', i, 'name'],
          message: `duplicate trust name "${t.name}"`,
        });
      }
      trustNames.add(t.name);
      if ((t.jwksUrl === undefined) === (t.jwks === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tokens', 'federation', i],
          message: 'set exactly one of jwksUrl and jwks',
        });
      }
    });
    for (const [name, u] of Object.entries(c.upstreams)) {
      const cred = u.credential;
      if (cred.type !== 'databricks-federation') continue;
      const path = ['upstreams', name, 'credential'];
      // The workspace fetches Keygate's keys from the issuer: it must be a stable public URL.
      if (c.publicUrl === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['publicUrl'],
          message: `must be set: upstream "${name}" uses databricks-federation, whose issuer it is`,
        });
      }
      // Keygate's access tokens and identity assertions are audienced to upstream URLs (and its
      // own tokens to its public URL): a policy trusting one of those would take them as well.
      const taken = [
        ...Object.values(c.upstreams).map((x) => x.url),
        ...(c.publicUrl === undefined ? [] : [c.publicUrl]),
      ];
      const trim = (s: string) => s.replace(/\/+$/, '');
      if (cred.audience !== undefined && taken.some((t) => trim(t) === trim(cred.audience as string))) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'audience'],
          message:
            "must differ from every upstream URL and from publicUrl: Keygate's other tokens carry those audiences",
        });
      }
      const seen = new Set<string>();
      cred.servicePrincipals.forEach((sp, i) => {
        if (seen.has(sp.keygateId)) {
          ctx.addIssue({
            code: 'custom',
            path: [...path, 'servicePrincipals', i, 'keygateId'],
            message: `duplicate "${sp.keygateId}"`,
          });
        }
        seen.add(sp.keygateId);
      });
    }
    if (c.tls && c.publicUrl?.startsWith('http:')) {
      ctx.addIssue({ code: 'custom', path: ['publicUrl'], message: 'must be https when tls is set' });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type CredentialConfig = z.output<typeof credentialSchema>;
