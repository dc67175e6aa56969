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
  /** The token's `aud` must match one of these. */
  audiences: string[];
  /** Claim holding the subject; default 'sub'. */
  subjectClaim?: string;
  /** For a service-principal policy: the required subject value. */
  subject?: string;
  /** Set => SP (workload) policy: the request must carry this `client_id`; the token maps to that SP. */
  servicePrincipalClientId?: string;
  /** Else discovered from `${issuer}/.well-known/openid-configuration` -> `jwks_uri`. */
  jwksUri?: string;
}

export interface SimOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Default '1234567890123456'. */
  workspaceId?: string;
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
  subject?: string;
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
