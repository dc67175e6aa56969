import type { IncomingMessage } from 'node:http';

/**
 * Who is calling (the principal) and how they proved it (the authentication context).
 * Every identifier produces this shape; everything after identification works on it.
 */
export interface Principal {
  type: 'user' | 'service_principal' | 'agent';
  id: string;
  email?: string;
  displayName?: string;
  groups: readonly string[];
  roles: readonly string[];
  /** An agent only: the person it acts for (the token's `sub`) and the delegation grant. */
  onBehalfOf?: { id: string; email?: string; grantId: string };
}

export interface AuthContext {
  /** How the principal proved itself: 'webauthn' (session), 'token', 'dpop', … */
  method: string;
  /** The auth event (ceremony or token issuance) that allowed this request. */
  authEventId: string;
  /** Epoch milliseconds of that authentication. */
  authTime: number;
  uv: boolean;
  deviceBound: boolean;
  credentialId?: string;
  aaguid?: string;
  /** The credential's attestation statement was verified at registration. */
  attested?: boolean;
  sessionId?: string;
  /** The corporate identity provider the person also logged in through, and that login's auth event. */
  idp?: string;
  idpEventId?: string;
  tokenId?: string;
  /** Access tokens only: the audiences (upstreams) the token was issued for. */
  audiences?: readonly string[];
  /**
   * Access tokens only: the actions the token is narrowed to (`action` or `action/glob`);
   * undefined = not narrowed (all-apis).
   */
  scopes?: readonly string[];
}

export interface Identity {
  principal: Principal;
  auth: AuthContext;
  /**
   * Stable cache key for this identity's derived artefacts (the upstream assertion);
   * identities that share it must produce the same assertion.
   */
  cacheKey: string;
}

/**
 * One way to recognise a caller. It returns an identity, `null` when the request carries no
 * credential of its kind, or throws a KeygateError (UNAUTHENTICATED) when it carries one that
 * is invalid — an invalid credential never falls through to the next identifier.
 * Sync results keep the hot path free of promise allocations.
 */
export interface Identifier {
  readonly name: string;
  identify(req: IncomingMessage): Identity | null | Promise<Identity | null>;
}
