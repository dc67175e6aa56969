/**
 * An upstream credential provider. Clients never see what it returns: the forwarder puts it
 * in the upstream request's Authorization header after removing the client's own.
 */
export interface CredentialProvider {
  readonly type: string;
  /**
   * The Authorization header value for the next upstream request, or null to send none.
   * Synchronous while a cached credential is fresh; a promise only when it must be fetched.
   * Rejects with KeygateError UPSTREAM_CREDENTIAL_UNAVAILABLE when it cannot be had.
   */
  authorization(): string | null | Promise<string | null>;
  /** Readiness: resolves when a credential can be had now. */
  check(): Promise<void>;
  close(): void;
}

export interface CredentialEvents {
  /** Called after each attempt to obtain a credential (never with the credential itself). */
  onRefresh?(outcome: 'ok' | 'error', detail?: string): void;
}
