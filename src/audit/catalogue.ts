/**
 * Every kind of audit record, with a stable code. docs/audit-events.md lists the same codes;
 * src/audit/catalogue.test.ts fails when the two disagree. Codes are never reused for another
 * meaning.
 */
export const AUDIT_KINDS = {
  'http.request':
    'A proxied request: allowed and forwarded (naming the identity the upstream saw), refused (401/403/step-up), or failed upstream.',
  'auth.register': 'A WebAuthn credential was registered (enrollment, backup key, recovery), or the attempt failed.',
  'auth.login': 'A WebAuthn login, success or failure with its reason.',
  'auth.idp_login':
    'A login through a corporate identity provider (OIDC), success or failure with its reason (state, token, claims, MFA, approval).',
  'auth.step_up': 'A fresh, user-verified assertion for a sensitive action (RFC 9470), success or failure.',
  'auth.approval':
    "A person's user-verified assertion approving one exact request of their agent (the credential that signed it, `via: approval:<id>`), or a failed attempt with its reason.",
  'agent.granted':
    'A person delegated actions to an agent (a service principal) until a time: `via: agent:<name>:<grant id>:<actions>`.',
  'agent.grant_revoked': "A person ended a delegation; the agent's tokens from it are refused from then on.",
  'approval.denied': "A person denied an agent's held request (which approval, agent, method, path, action).",
  'auth.logout': 'A browser session was ended by its owner.',
  'auth.credential_revoked': 'A person revoked one of their credentials.',
  'auth.credential_renamed': 'A person renamed one of their credentials.',
  'auth.enrollment_issued': 'An enrollment link was created (by an admin or the CLI).',
  'auth.recovery_issued': 'A recovery link was created.',
  'auth.recovery_used': 'A recovery link was used to register a new credential.',
  'token.issued': 'The authorization server issued a token (a person after an OAuth login; a machine per grant).',
  'token.refused': 'A token request was refused for a reason worth auditing (federation, exchange).',
  'token.refreshed':
    'A refresh token was exchanged for new tokens (rotation), audited against the login behind its grant.',
  'token.reuse_detected': 'A rotated refresh token was presented again: its whole family was revoked.',
  'token.revoked': 'A token or a grant was revoked (RFC 7009, logout).',
  'admin.change':
    'An administrator changed a principal or a setting through the admin API: who, what, the target before and after (never secrets).',
  'scim.change':
    'A SCIM client (an identity provider) created, changed, deactivated or deleted a person or a group: which token, the target before and after.',
  'audit.pruned':
    'Records older than the retention were removed, up to a signed checkpoint that anchors the new start of the chain.',
  'audit.started': 'A gateway process started writing to the audit log (where the chain continues).',
} as const;

export type AuditKind = keyof typeof AUDIT_KINDS;

export function isAuditKind(k: string): k is AuditKind {
  return Object.hasOwn(AUDIT_KINDS, k);
}
