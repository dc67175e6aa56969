/**
 * Request bodies of the WebAuthn endpoints, parsed once at the edge into typed data. The
 * credential JSON shapes are the standard RegistrationResponseJSON / AuthenticationResponseJSON;
 * sizes are bounded so a hostile body cannot make verification expensive.
 */
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { z } from 'zod';

const b64url = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url');
const credId = b64url(1400); // 1023 bytes (SECURITY-CHECKLIST R12) is 1364 base64url characters

const extensions = z.record(z.string(), z.unknown()).default({});

/** What registration and authentication responses share. */
const credentialBase = {
  id: credId,
  rawId: credId,
  type: z.literal('public-key'),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: extensions,
};

export const registrationResponse = z.object({
  ...credentialBase,
  response: z.object({
    clientDataJSON: b64url(4096),
    attestationObject: b64url(65536),
    authenticatorData: b64url(65536).optional(),
    transports: z.array(z.string().max(32)).max(8).optional(),
    publicKeyAlgorithm: z.number().optional(),
    publicKey: b64url(4096).optional(),
  }),
});

export const authenticationResponse = z.object({
  ...credentialBase,
  response: z.object({
    clientDataJSON: b64url(4096),
    authenticatorData: b64url(8192),
    signature: b64url(2048),
    userHandle: b64url(128).optional(),
  }),
});

export const registrationOptionsBody = z.strictObject({ enrollmentToken: z.string().max(128).optional() });

export const registrationVerifyBody = z.strictObject({
  response: registrationResponse,
  name: z.string().trim().min(1).max(64).optional(),
  enrollmentToken: z.string().max(128).optional(),
});

export const authenticationOptionsBody = z.strictObject({
  email: z.string().trim().max(320).optional(),
  /** After an identity provider login (require-local-key): a key of the person it named. */
  idp: z.literal(true).optional(),
});

export const authenticationVerifyBody = z.strictObject({
  response: authenticationResponse,
  returnTo: z.string().max(2048).optional(),
  idp: z.literal(true).optional(),
});

/** Narrowing to the library's types: the shapes match; extra optional members are the library's own. */
export function asRegistrationJSON(r: z.infer<typeof registrationResponse>): RegistrationResponseJSON {
  return r as unknown as RegistrationResponseJSON;
}

export function asAuthenticationJSON(r: z.infer<typeof authenticationResponse>): AuthenticationResponseJSON {
  return r as unknown as AuthenticationResponseJSON;
}
