// Public types of the simulator. The gateway's tests and CLI depend on these names.

export interface SimIdentity {
  id: string;
  /** Email for a user; the application (client) id for a service principal. */
  userName: string;
  displayName?: string;
  kind: 'user' | 'service_principal';
  groups?: string[];
}

export interface SimFederationPolicy {
  /** Required `iss` of the subject token. */
  issuer: string;
  /** The token's `aud` must match one of these; default: the account id (`SimOptions.accountId`). */
  audiences?: string[];
  /** Claim holding the subject; default 'sub'. */
  subjectClaim?: string;
  /** Required for a service-principal policy (the subject value it accepts); forbidden for an account-wide one. */
  subject?: string;
  /** Set => SP (workload) policy: the request must carry this `client_id`; the token maps to that SP. */
  servicePrincipalClientId?: string;
  /** Else discovered from `${issuer}/.well-known/openid-configuration` -> `jwks_uri`. */
  jwksUri?: string;
  /** The issuer's keys inline, instead of fetching them (at most one of jwksUri and jwksJson). */
  jwksJson?: { keys: Record<string, unknown>[] };
}

export interface SimOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Default '1234567890123456'. */
  workspaceId?: string;
  /** The account id: the default audience of federation policies. Default '0d26daa6-5e44-4c97-a497-ef015f91254a'. */
  accountId?: string;
  /**
   * After fetching an issuer's JWKS, a token with an unknown `kid` makes the simulator fetch it
   * again only once this many seconds have passed (by `now`). Default 30. An addition: Databricks'
   * own caching is not documented.
   */
  jwksCooldownSeconds?: number;
  /** Accepted personal access tokens -> identity. */
  pats?: Record<string, SimIdentity>;
  servicePrincipals?: { clientId: string; clientSecret: string; identity: SimIdentity }[];
  /** Known users; account-wide federation maps the subject claim to a user's userName. Unknown subjects are rejected. */
  users?: SimIdentity[];
  federationPolicies?: SimFederationPolicy[];
  /** Default 3600; `expires_in` of issued tokens. */
  tokenTtlSeconds?: number;
  /** GETs of an endpoint until a pending config settles (default 2). */
  deployPolls?: number;
  /** GETs of a run until it terminates (default 2). */
  runPolls?: number;
  /** Delay between SSE chunks (default 5). */
  streamChunkDelayMs?: number;
  /** Optional structured log sink; tokens and secrets are never logged. */
  log?: (line: Record<string, unknown>) => void;
  /** Clock in epoch milliseconds (default Date.now); lets tests expire tokens without sleeping. Not in the original contract: an addition. */
  now?: () => number;
}

export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  status: number;
  /** userName the presented token belonged to (null if none/invalid). */
  identity: string | null;
  /** How it authenticated (oauth = a token this sim issued via /oidc/v1/token). */
  tokenKind: 'pat' | 'oauth' | null;
  /** Request headers as received, with the authorization value replaced by '[redacted]'. */
  headers: Record<string, string>;
}

export interface TokenRequestRecord {
  at: number;
  grantType: string;
  clientId: string | null;
  ok: boolean;
  error?: string;
  /** Token exchange: the subject claim's value. */
  subject?: string;
  /** Token exchange: the `kid` of the subject token. */
  keyId?: string;
  /** Success: the userName of the identity the token was issued for. */
  identity?: string;
}

export interface Simulator {
  /** e.g. http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  /** Every request except the anonymous discovery/token endpoints. */
  requests: RecordedRequest[];
  /** Every POST to the token endpoint. */
  tokenRequests: TokenRequestRecord[];
  /** Clears requests and tokenRequests (not state). */
  reset(): void;
  /** Closes the server and all keep-alive sockets promptly. */
  close(): Promise<void>;
}
