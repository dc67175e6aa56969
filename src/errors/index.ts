/**
 * One error base with a closed set of codes. The wire shape is the workspace's own
 * (`{"error_code","message","request_id"}`) so that Databricks SDKs surface it; the
 * `detail` is for the operator's log only and never leaves the process.
 * docs/errors.md lists every code; src/errors/index.test.ts fails when the two differ.
 */

export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  UNAUTHENTICATED: { status: 401, message: 'Authentication is required.' },
  LOGIN_FAILED: { status: 401, message: 'Login failed.' },
  STEP_UP_REQUIRED: {
    status: 401,
    message: 'This action needs a fresh tap of your security key.',
  },
  FRESH_LOGIN_REQUIRED: { status: 401, message: 'This needs a recent login: sign in again, then retry.' },
  APPROVAL_REQUIRED: {
    status: 401,
    message:
      'This request needs its person to approve it with their key: open approval_url, then retry with the approval id.',
  },
  APPROVAL_INVALID: { status: 403, message: 'This approval does not allow this request.' },
  CHALLENGE_INVALID: { status: 400, message: 'The ceremony expired or was already used; start again.' },
  REGISTRATION_REFUSED: { status: 400, message: 'The authenticator was not accepted.' },
  ENROLLMENT_TOKEN_INVALID: { status: 403, message: 'This enrollment link is invalid, used or expired.' },
  CROSS_SITE_REQUEST: { status: 403, message: 'Cross-site requests are not allowed.' },
  CREDENTIAL_ALREADY_REGISTERED: { status: 409, message: 'This authenticator is already registered.' },
  LAST_CREDENTIAL: {
    status: 409,
    message: 'You cannot remove your only key: add another one first, or ask an administrator for a recovery link.',
  },
  PERMISSION_DENIED: { status: 403, message: 'The request is not allowed.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed.' },
  CONFLICT: { status: 409, message: 'The request conflicts with the current state.' },
  REQUEST_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are too large.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time.' },
  REQUEST_LIMIT_EXCEEDED: { status: 429, message: 'Too many requests; retry later.' },
  INTERNAL_ERROR: { status: 500, message: 'Internal error.' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'The upstream service could not be reached.' },
  UPSTREAM_CREDENTIAL_UNAVAILABLE: {
    status: 502,
    message: 'The gateway could not obtain a credential for the upstream service.',
  },
  UPSTREAM_IDENTITY_UNMAPPED: {
    status: 403,
    message: 'This caller has no identity at the upstream service: the gateway maps no workspace identity to it.',
  },
  UPSTREAM_IDENTITY_REJECTED: {
    status: 403,
    message: 'The upstream workspace does not accept this identity: it is not a user of the workspace.',
  },
  UPSTREAM_FEDERATION_REJECTED: {
    status: 502,
    message:
      "The upstream workspace refused the gateway's federated identity token: its federation policy does not match the gateway's.",
  },
  TEMPORARILY_UNAVAILABLE: { status: 503, message: 'The gateway is shutting down or not ready.' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream service did not answer in time.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface WireError {
  error_code: ErrorCode;
  message: string;
  request_id?: string;
  /** APPROVAL_REQUIRED: the approval to ask for, and the page where its person approves it. */
  approval_id?: string;
  approval_url?: string;
}

export class KeygateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** What the client may see. Defaults to the code's generic message. */
  readonly publicMessage: string;
  /** Operator-only detail for the log; never sent to a client. */
  readonly detail: string | undefined;
  /** Extra response headers (for example WWW-Authenticate or Retry-After). */
  readonly headers: Readonly<Record<string, string>>;
  /** Extra members of the error body (APPROVAL_REQUIRED's approval id and page). */
  readonly fields: Readonly<Pick<WireError, 'approval_id' | 'approval_url'>>;

  constructor(
    code: ErrorCode,
    opts: {
      message?: string;
      detail?: string;
      cause?: unknown;
      headers?: Record<string, string>;
      fields?: Pick<WireError, 'approval_id' | 'approval_url'>;
    } = {},
  ) {
    const def = ERROR_CODES[code];
    super(opts.message ?? def.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KeygateError';
    this.code = code;
    this.status = def.status;
    // A 5xx leaves as the generic message: the specific text goes to the log only.
    this.publicMessage = def.status >= 500 ? def.message : (opts.message ?? def.message);
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
    this.fields = opts.fields ?? {};
  }

  toWire(requestId?: string): WireError {
    const body: WireError = { error_code: this.code, message: this.publicMessage, ...this.fields };
    if (requestId !== undefined) body.request_id = requestId;
    return body;
  }
}

export function isKeygateError(e: unknown): e is KeygateError {
  return e instanceof KeygateError;
}

/**
 * The store cannot be reached or is busy: PostgreSQL connection failures (SQLSTATE class 08,
 * 57P01-57P03 shutdown and startup), a refused or dropped connection, a pool that cannot get
 * one, SQLite's lock timeout. Those are the database's outage, not a bug: 503, and the client
 * may retry.
 */
export function isStoreUnavailable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = String((e as { code?: unknown }).code ?? '');
  // PostgreSQL: connection exceptions, shutdown, too many connections, disk full (53100), a
  // read-only transaction (25006: a standby after failover).
  if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300', '53100', '25006'].includes(code)) return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOSPC', 'EROFS'].includes(code)) return true;
  // SQLite: busy or locked, the disk full, the file read-only, an I/O error, or cannot be opened.
  if (/^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN)/.test(code)) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(e.message);
}

/** Any thrown value as a KeygateError; unknown errors become INTERNAL_ERROR (generic to the client). */
export function toKeygateError(e: unknown): KeygateError {
  if (isKeygateError(e)) return e;
  const detail = e instanceof Error ? e.message : String(e);
  if (isStoreUnavailable(e))
    return new KeygateError('TEMPORARILY_UNAVAILABLE', { detail: `store: ${detail}`, cause: e });
  return new KeygateError('INTERNAL_ERROR', { detail, cause: e });
}
