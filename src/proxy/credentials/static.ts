import type { SecretSource } from './secret-source.js';
import type { CredentialProvider } from './types.js';

/** A fixed upstream token (re-read from its file when that changes). */
export class StaticCredential implements CredentialProvider {
  readonly type = 'static';
  constructor(private readonly secret: SecretSource) {}

  authorization(): string {
    return `Bearer ${this.secret.get()}`;
  }

  async check(): Promise<void> {
    this.secret.get();
  }

  close(): void {
    this.secret.close();
  }
}

export class NoCredential implements CredentialProvider {
  readonly type = 'none';
  authorization(): null {
    return null;
  }
  async check(): Promise<void> {}
  close(): void {}
}
