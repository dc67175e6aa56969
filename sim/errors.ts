// The two error families the simulator speaks on the wire (databricks-api.md §6 and §1.4).

/** A workspace API error: `{"error_code","message"}`. No `details`, because the JS SDK drops the code when a detail lacks `metadata`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope';

/** An OAuth token-endpoint error: `{"error","error_description"}` (RFC 6749 §5.2). */
export class OAuthError extends Error {
  /** Token exchange: the subject claim of a verified token that was refused all the same (for the record). */
  subject?: string;
  /** Token exchange: the `kid` the subject token named. */
  keyId?: string;

  constructor(
    readonly status: 400 | 401,
    readonly error: OAuthErrorCode,
    readonly description: string,
  ) {
    super(description);
  }
}

export const badRequest = (message: string): ApiError => new ApiError(400, 'BAD_REQUEST', message);
export const invalidParam = (message: string): ApiError => new ApiError(400, 'INVALID_PARAMETER_VALUE', message);
export const notFound = (message: string): ApiError => new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', message);
export const alreadyExists = (message: string): ApiError => new ApiError(409, 'RESOURCE_ALREADY_EXISTS', message);
export const conflict = (message: string): ApiError => new ApiError(409, 'RESOURCE_CONFLICT', message);
export const permissionDenied = (message: string): ApiError => new ApiError(403, 'PERMISSION_DENIED', message);
