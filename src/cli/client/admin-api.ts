/**
 * `keygate admin … --gateway URL`: the admin API of a running gateway, called with the
 * person's own login (`keygate login`). The CLI's access token is exchanged (RFC 8693) for one
 * whose audience is Keygate itself, still bound to the CLI's DPoP key; every call carries a
 * fresh proof. The gateway decides each call by policy, like the console's.
 */
import type { Clock } from '../../lib/clock.js';
import type { CredentialStore } from './credentials.js';
import { dpopProof } from './dpop.js';
import { ClientError } from './errors.js';
import { exchangeForKeygate } from './oauth.js';
import { type Fresh, Session } from './session.js';

export const ADMIN_PREFIX = '/.keygate/api/admin/v1';

/** The gateway refused an admin call: its error code (FRESH_LOGIN_REQUIRED, PERMISSION_DENIED, …) and message. */
export class AdminApiError extends Error {
  override readonly name = 'AdminApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class AdminApi {
  private readonly session: Session;
  private token: { value: string; expiresAt: number; fresh: Fresh } | undefined;

  constructor(
    readonly gateway: string,
    store: CredentialStore,
    private readonly clock: Clock,
    /** Keygate's API this client calls: the admin API, or another part of `/.keygate/api/`. */
    private readonly prefix: string = ADMIN_PREFIX,
  ) {
    this.session = new Session(gateway, store, clock);
  }

  /** One call; a JSON answer is parsed, 204 is undefined, an error answer throws AdminApiError. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const { value, fresh } = await this.adminToken();
    const url = new URL(this.prefix + path, this.gateway);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        redirect: 'manual',
        headers: {
          authorization: `DPoP ${value}`,
          dpop: await dpopProof(fresh.key, this.clock, method, url, value),
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (e) {
      throw new ClientError('GATEWAY_UNREACHABLE', `cannot reach the gateway at ${this.gateway}`, { cause: e });
    }
    const text = await res.text();
    if (res.status >= 200 && res.status < 300) return (text === '' ? undefined : JSON.parse(text)) as T;
    let code = 'UNKNOWN';
    let message = `the gateway answered ${res.status}`;
    try {
      const e = JSON.parse(text) as { error_code?: string; message?: string };
      code = e.error_code ?? code;
      message = e.message ?? message;
    } catch {
      // Not the contract's error shape (a proxy in between?): the status says enough.
    }
    throw new AdminApiError(res.status, code, message);
  }

  /** A token for Keygate's own audience with at least a minute left, exchanged once per CLI run. */
  private async adminToken(): Promise<{ value: string; fresh: Fresh }> {
    const t = this.token;
    if (t !== undefined && t.expiresAt - this.clock.now() > 60_000) return t;
    const fresh = await this.session.fresh();
    const r = await exchangeForKeygate(this.gateway, await this.session.configuration(), fresh.key, fresh.accessToken);
    const next = { value: r.access_token, expiresAt: this.clock.now() + (r.expires_in ?? 60) * 1000, fresh };
    this.token = next;
    return next;
  }
}
