/**
 * Taking a person's access away, the one way the admin API and SCIM both do it. Disabling ends
 * their sessions and refresh-token families at once — on every replica within a second, through
 * the revocations each proxy polls — and logins and refreshes are refused from then on.
 * Deleting also refuses every access token issued to them, then removes them.
 */
import type { Sessions } from '../authenticate/sessions.js';
import type { Store, UserRecord } from '../store/types.js';

export interface PeopleDeps {
  store: Store;
  sessions: Sessions;
  /** End a token family: its refresh tokens are deleted and its access tokens refused. */
  revokeGrant: (grantId: string) => Promise<void>;
  /** Refuse every token of a subject issued so far. */
  revokeSubject: (subject: string) => Promise<void>;
  now: () => number;
}

export class People {
  constructor(private readonly d: PeopleDeps) {}

  async setDisabled(u: UserRecord, disabled: boolean): Promise<void> {
    await this.d.store.setUserDisabled(u.id, disabled ? this.d.now() : null);
    if (disabled) await this.endAccess(u);
    this.d.sessions.forgetUser(u.id);
  }

  async delete(u: UserRecord): Promise<void> {
    await this.endAccess(u);
    await this.d.revokeSubject(u.id);
    await this.d.store.deleteUser(u.id);
    this.d.sessions.forgetUser(u.id);
  }

  private async endAccess(u: UserRecord): Promise<void> {
    await this.d.sessions.revokeForUser(u.id);
    for (const f of await this.d.store.listOAuthGrants({ accountId: u.id, now: this.d.now(), limit: 10_000 }))
      await this.d.revokeGrant(f.id);
  }
}
