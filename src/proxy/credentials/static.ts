import type { SecretSource } from './secret-source.js';
import type { CredentialProvider, UpstreamAuth } from './types.js';

const STATIC_IDENTITY = Object.freeze({ type: 'static' as const });

/** A fixed upstream token (re-read from its file when that changes). */
export class StaticCredential implements CredentialProvider {
  readonly type = 'static';
  /** The answer for the current secret, made again only when the file changes. */
  private last: { secret: string; auth: UpstreamAuth } | undefined;

  constructor(private readonly secret: SecretSource) {}

  authorization(): UpstreamAuth {
    const secret = this.secret.get();
    if (this.last === undefined || this.last.secret !== secret) {
      this.last = { secret, auth: Object.freeze({ header: `Bearer ${secret}`, identity: STATIC_IDENTITY }) };
    }
    return this.last.auth;
  }

  async check(): Promise<void> {
    this.secret.get();
  }

  close(): void {
    this.secret.close();
  }
}

const NONE: UpstreamAuth = Object.freeze({ header: null, identity: Object.freeze({ type: 'none' as const }) });

export class NoCredential implements CredentialProvider {
  readonly type = 'none';
  authorization(): UpstreamAuth {
    return NONE;
  }
  async check(): Promise<void> {}
  close(): void {}
}
