import type { UpstreamIdentity } from '../../audit/record.js';
import type { Principal } from '../../authenticate/identity.js';

export type { UpstreamIdentity } from '../../audit/record.js';

/** What goes upstream for one request: the Authorization header and who the upstream sees. */
export interface UpstreamAuth {
  /** The Authorization header value, or null to send none. */
  readonly header: string | null;
  /** For the audit record: never a token. */
  readonly identity: UpstreamIdentity;
}

/**
 * An upstream credential provider. Clients never see what it returns: the forwarder puts it
 * in the upstream request's Authorization header after removing the client's own.
 */
export interface CredentialProvider {
  readonly type: string;
  /**
   * The credential for the next upstream request made for `principal` (a shared provider
   * ignores it; per-user federation uses it).
   * Synchronous while a cached credential is fresh; a promise only when it must be fetched.
   * Rejects with a KeygateError (UPSTREAM_CREDENTIAL_UNAVAILABLE, or a federation code) when
   * it cannot be had.
   */
  authorization(principal: Principal): UpstreamAuth | Promise<UpstreamAuth>;
  /** Readiness: resolves when a credential can be had now. */
  check(): Promise<void>;
  close(): void;
}

export interface CredentialEvents {
  /** Called after each attempt to obtain a credential (never with the credential itself). */
  onRefresh?(outcome: 'ok' | 'error', detail?: string): void;
  /** Per-user federation failed and the shared service principal was used instead (explicitly allowed). */
  onFallback?(code: string, detail?: string): void;
}
