/**
 * The people's CLI (login, token, whoami, logout, proxy) fails with one of these codes; the
 * message is the one line the command prints.
 */
export type ClientErrorCode =
  /** No credentials for the gateway, or their refresh-token family has ended. */
  | 'NOT_LOGGED_IN'
  /** The gateway URL is not one the CLI will send credentials to. */
  | 'BAD_GATEWAY_URL'
  /** The gateway could not be reached or did not answer like a Keygate gateway. */
  | 'GATEWAY_UNREACHABLE'
  /** The sign-in was refused, cancelled, expired or timed out. */
  | 'LOGIN_FAILED'
  /** The gateway answered a token request with an error other than a dead refresh token. */
  | 'TOKEN_REFUSED'
  /** The local credentials directory or file is unsafe or unreadable. */
  | 'CREDENTIALS_UNUSABLE';

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const notLoggedIn = (gateway: string): ClientError =>
  new ClientError('NOT_LOGGED_IN', `not logged in: run keygate login (gateway ${gateway})`);
