/**
 * The Store is the floor of the house: it imports nothing from the services above it.
 * One interface, an SQLite implementation (embedded default) and, later, PostgreSQL; both
 * must pass the same suite (src/store/store.contract.ts).
 */

export interface SigningKeyRecord {
  kid: string;
  alg: 'ES256';
  /** What the key signs: identity assertions to upstreams, tokens, audit checkpoints. */
  use: 'assertion' | 'token' | 'audit';
  publicJwk: string;
  privateJwk: string;
  createdAt: number;
  /** After this time the key no longer signs; it is still published until its tokens expire. */
  retiresAt: number | null;
}

export interface RoleBindingRecord {
  id: string;
  subjectType: 'group' | 'user';
  /** A group name, or a user's email (lower-cased). */
  subject: string;
  role: string;
  createdAt: number;
  createdBy: string;
}

export interface OAuthGrantSummary {
  id: string;
  accountId: string;
  clientId: string;
  createdAt: number;
  expiresAt: number | null;
}

export interface UserRecord {
  id: string;
  email: string;
  displayName: string;
  /** WebAuthn user handle (base64url of 32 random bytes). */
  webauthnId: string;
  createdAt: number;
  disabledAt: number | null;
  roles: string[];
  /** Names of the Keygate groups the person is a member of, sorted. */
  groups: string[];
  /** What a SCIM client calls the person (RFC 7643 externalId), when one provisioned them. */
  externalId: string | null;
}

export interface GroupRecord {
  /** A UUID (what SCIM calls the group's id). */
  id: string;
  /** Unique; what role bindings and policies name (`Group::"<name>"`). */
  name: string;
  description: string;
  createdAt: number;
  createdBy: string;
  /** What a SCIM client calls the group (RFC 7643 externalId). */
  externalId: string | null;
}

/** A bearer token a SCIM client presents (only its SHA-256 is kept). */
export interface ScimTokenRecord {
  id: string;
  name: string;
  hash: string;
  createdAt: number;
  createdBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A person's delegation to an agent (a service principal): the actions it may take for them, until when. */
export interface AgentGrantRecord {
  id: string;
  userId: string;
  /** The agent's service principal id. */
  agentId: string;
  actions: string[];
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** One exact request an agent asked to make, held until its person approves it with a key tap. */
export interface ApprovalRecord {
  id: string;
  userId: string;
  agentId: string;
  grantId: string;
  upstream: string;
  method: string;
  /** Normalized path and the raw query string (with its `?`, or ''). */
  path: string;
  query: string;
  action: string;
  /** `Type::id`. */
  resource: string;
  contentType: string | null;
  body: Uint8Array;
  bodySha256: string;
  /** SHA-256 over method, path, query and body hash: what the approval covers (approvals.ts). */
  digest: string;
  status: 'pending' | 'approved' | 'denied' | 'used';
  createdAt: number;
  expiresAt: number;
  decidedAt: number | null;
  /** The credential whose assertion approved it, and that auth event. */
  credentialId: string | null;
  eventId: string | null;
  usedAt: number | null;
}

/** A workload federation trust made through the admin API; `spec` has the shape of a tokens.federation entry. */
export interface FederationTrustRecord {
  name: string;
  /** JSON of the trust (issuer, jwksUrl or jwks, audience, subject, servicePrincipal). */
  spec: string;
  createdAt: number;
  createdBy: string;
}

export interface CredentialRecord {
  id: string;
  userId: string;
  publicKey: Uint8Array;
  counter: number;
  aaguid: string;
  transports: string[];
  backupEligible: boolean;
  backedUp: boolean;
  uvInitialized: boolean;
  attestationFmt: string;
  attested: boolean;
  name: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
  clonedAt: number | null;
}

export interface EnrollmentTokenRecord {
  tokenHash: string;
  userId: string;
  kind: 'enroll' | 'recovery';
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface ChallengeRecord {
  challenge: string;
  kind: 'registration' | 'authentication';
  userId: string | null;
  bindingHash: string;
  enrollmentHash: string | null;
  allowIds: string[];
  expiresAt: number;
}

/** The corporate identity provider login behind a session. */
export interface SessionIdp {
  /** The provider's name in keygate.yaml. */
  provider: string;
  /** The auth event of the provider login. */
  eventId: string;
  /** The provider's groups for the person, as last confirmed. */
  groups: string[];
  /** Epoch ms the groups were last confirmed (login or refresh). */
  groupsAt: number;
  /** The provider's refresh token, sealed (AES-256-GCM) with the configured secret key; null when none is kept. */
  refresh: string | null;
}

export interface SessionRecord {
  idHash: string;
  userId: string;
  /** The key the person logged in with; '' for a session made by an identity provider alone (trust-idp-mfa). */
  credentialId: string;
  authEventId: string;
  authTime: number;
  uv: boolean;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  revokedAt: number | null;
  ip: string;
  userAgent: string;
  /** The identity provider login behind the session, when there was one. */
  idp?: SessionIdp;
}

export interface AuthEventRecord {
  id: string;
  at: number;
  /** Catalogued kind, e.g. auth.register, auth.login, auth.enroll_token. */
  kind: string;
  outcome: 'success' | 'failure';
  reason: string | null;
  userId: string | null;
  credentialId: string | null;
  aaguid: string | null;
  authenticator: string | null;
  uv: boolean | null;
  backupEligible: boolean | null;
  backedUp: boolean | null;
  ip: string;
  userAgent: string;
  /** Not stored with the event; carried to the audit log: who the principal is. */
  principalType?: 'user' | 'service_principal';
  /** Not stored with the event; carried to the audit log: the secret id or federation trust used. */
  via?: string;
}

/** One oidc-provider artifact (authorization code, device code, refresh token, grant, …). */
export interface OAuthArtifactRecord {
  model: string;
  id: string;
  /** The provider's payload, as JSON. */
  payload: string;
  grantId: string | null;
  userCode: string | null;
  uid: string | null;
  /** Epoch ms; null = no expiry. */
  expiresAt: number | null;
  consumedAt: number | null;
}

export interface ServicePrincipalRecord {
  /** The OAuth client_id: a UUID. */
  id: string;
  name: string;
  description: string;
  roles: string[];
  /** Public keys for private_key_jwt, as a JWKS JSON document; null = no key registered. */
  jwks: string | null;
  createdAt: number;
  createdBy: string;
  disabledAt: number | null;
}

export interface ServicePrincipalSecretRecord {
  id: string;
  spId: string;
  /** A slow hash (scrypt) of the secret, self-describing: scrypt$N$r$p$salt$hash. */
  hash: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface RevocationRecord {
  /** `jti:<token id>` or `grant:<grant id>`. */
  id: string;
  revokedAt: number;
  /** When the last token this could affect has expired; the row may be purged after. */
  expiresAt: number;
}

/** Thrown by insertCredential when the credential id is already registered (to anyone). */
export class DuplicateCredentialError extends Error {
  constructor() {
    super('credential id already registered');
    this.name = 'DuplicateCredentialError';
  }
}

export interface MigrationStatus {
  /** Versions applied by this call. */
  applied: number[];
  /** Highest version now in the database. */
  current: number;
}

export interface Store {
  readonly driver: 'sqlite' | 'postgres';
  /** Apply pending migrations, each in its own transaction. */
  migrate(): Promise<MigrationStatus>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;

  getMeta(key: string): Promise<string | null>;
  /** Sets `key` only if it is not set yet; returns the value now stored (race-free across replicas). */
  initMeta(key: string, value: string): Promise<string>;

  insertSigningKey(k: SigningKeyRecord): Promise<void>;
  listSigningKeys(use: SigningKeyRecord['use']): Promise<SigningKeyRecord[]>;

  // People
  /** Creates the user, or returns the existing one with that email (case-insensitive). */
  upsertUser(
    u: Omit<UserRecord, 'roles' | 'groups' | 'disabledAt' | 'externalId'>,
    roles: string[],
  ): Promise<UserRecord>;
  /** Change a person's email, name or SCIM externalId (what is given); false when there is no such user. */
  updateUser(id: string, o: { email?: string; displayName?: string; externalId?: string | null }): Promise<boolean>;
  getUser(id: string): Promise<UserRecord | null>;
  getUserByEmail(email: string): Promise<UserRecord | null>;
  getUserByWebauthnId(webauthnId: string): Promise<UserRecord | null>;
  countUsersWithRole(role: string): Promise<number>;
  /** Users whose email or name contains `query`, in email order, after the email `after`. */
  listUsers(o: { query?: string; after?: string; limit: number }): Promise<UserRecord[]>;
  /** Disable (at) or enable (null) a user; false when there is no such user. */
  setUserDisabled(id: string, at: number | null): Promise<boolean>;
  /**
   * Delete a person and everything that is theirs in the store (keys, sessions, links, group
   * memberships); their auth events stay. False when there is no such user.
   */
  deleteUser(id: string): Promise<boolean>;

  // Groups and their members
  listGroups(): Promise<(GroupRecord & { members: number })[]>;
  getGroup(idOrName: string): Promise<GroupRecord | null>;
  /** False when a group of that name exists already. */
  insertGroup(g: GroupRecord): Promise<boolean>;
  updateGroup(id: string, o: { name?: string; externalId?: string | null }): Promise<boolean>;
  /** Deletes the group and its memberships; the deleted group, or null. */
  deleteGroup(id: string): Promise<GroupRecord | null>;
  listGroupMembers(groupId: string): Promise<UserRecord[]>;
  /** False when the person is a member already. */
  addGroupMember(groupId: string, userId: string, at: number): Promise<boolean>;
  /** False when the person was not a member. */
  removeGroupMember(groupId: string, userId: string): Promise<boolean>;

  // Credentials
  /** Throws DuplicateCredentialError when the id is registered already (to anyone, revoked or not). */
  insertCredential(c: CredentialRecord): Promise<void>;
  getCredential(id: string): Promise<CredentialRecord | null>;
  listCredentials(userId: string): Promise<CredentialRecord[]>;
  markCredentialCloned(id: string, at: number): Promise<void>;
  renameCredential(userId: string, id: string, name: string): Promise<boolean>;
  revokeCredential(userId: string, id: string, at: number): Promise<boolean>;

  // Enrollment and recovery links
  insertEnrollmentToken(t: EnrollmentTokenRecord): Promise<void>;
  getEnrollmentToken(tokenHash: string): Promise<EnrollmentTokenRecord | null>;
  /** Marks the token used if it is unused and unexpired; false otherwise (single use, race-free). */
  consumeEnrollmentToken(tokenHash: string, now: number): Promise<boolean>;
  hasUsableRecoveryToken(userId: string, now: number): Promise<boolean>;

  /**
   * A successful login, atomically: compare-and-swap the credential counter, record the auth
   * event, end the browser's previous session (if any) and start the new one. False (and
   * nothing written) when another login moved the counter first.
   */
  completeLogin(o: {
    credentialId: string;
    expectedCounter: number;
    use: { counter: number; backedUp: boolean; uv: boolean; at: number };
    event: AuthEventRecord;
    session: SessionRecord;
    endSessionHash: string | null;
  }): Promise<boolean>;

  /**
   * An approval's key tap, atomically: compare-and-swap the credential counter (as a login),
   * record the auth event, and move the approval from pending to approved — only if it is
   * still pending, unexpired and the person's. False (nothing written) otherwise.
   */
  approveWithCredential(o: {
    approvalId: string;
    userId: string;
    credentialId: string;
    expectedCounter: number;
    use: { counter: number; backedUp: boolean; uv: boolean; at: number };
    event: AuthEventRecord;
  }): Promise<boolean>;

  // WebAuthn challenges (single use: taking deletes)
  insertChallenge(c: ChallengeRecord): Promise<void>;
  takeChallenge(challenge: string): Promise<ChallengeRecord | null>;

  // Sessions
  insertSession(s: SessionRecord): Promise<void>;
  getSession(idHash: string): Promise<SessionRecord | null>;
  touchSession(idHash: string, at: number): Promise<void>;
  revokeSession(idHash: string, at: number): Promise<void>;
  /** Revokes every live session of the user; returns the revoked id hashes. */
  revokeUserSessions(userId: string, at: number): Promise<string[]>;
  /** Live sessions (not revoked, not expired at `liveAt`), most recently seen first. */
  listSessions(o: { userId?: string; liveAt: number; limit: number }): Promise<SessionRecord[]>;
  /** Revokes every live session that was opened with this credential; returns their id hashes. */
  revokeCredentialSessions(credentialId: string, at: number): Promise<string[]>;
  /** Replace the identity provider part of a session (its groups were refreshed or dropped). */
  setSessionIdp(idHash: string, idp: SessionIdp): Promise<void>;

  // A person's accounts at identity providers
  /** The user id linked to (provider, subject), or null. */
  findUserIdentity(provider: string, subject: string): Promise<string | null>;
  /** Link (or re-confirm) an account at a provider to a user; records the login time. */
  linkUserIdentity(provider: string, subject: string, userId: string, at: number): Promise<void>;

  insertAuthEvent(e: AuthEventRecord): Promise<void>;
  listAuthEvents(filter: { userId?: string; limit: number }): Promise<AuthEventRecord[]>;

  // OAuth artifacts of the built-in authorization server (oidc-provider's adapter)
  upsertOAuthArtifact(a: OAuthArtifactRecord): Promise<void>;
  /** Inserts unless an unexpired artifact with that id exists; false when one does (single use, race-free). */
  insertOAuthArtifactIfAbsent(a: OAuthArtifactRecord, now: number): Promise<boolean>;
  /** Unexpired artifact by id, user code or interaction uid; null when absent or expired. */
  findOAuthArtifact(
    model: string,
    by: 'id' | 'userCode' | 'uid',
    value: string,
    now: number,
  ): Promise<OAuthArtifactRecord | null>;
  /** Marks it consumed; true only for the first caller (single use across replicas). */
  consumeOAuthArtifact(model: string, id: string, at: number): Promise<boolean>;
  destroyOAuthArtifact(model: string, id: string): Promise<void>;
  /** Deletes every artifact of the grant (any model); returns how many. */
  revokeOAuthGrant(grantId: string): Promise<number>;
  /** Deletes expired artifacts; returns how many. */
  purgeOAuthArtifacts(now: number): Promise<number>;

  // Service principals (machines: OAuth clients, never people)
  insertServicePrincipal(sp: ServicePrincipalRecord): Promise<void>;
  getServicePrincipal(id: string): Promise<ServicePrincipalRecord | null>;
  getServicePrincipalByName(name: string): Promise<ServicePrincipalRecord | null>;
  listServicePrincipals(): Promise<ServicePrincipalRecord[]>;
  setServicePrincipalJwks(id: string, jwks: string | null): Promise<boolean>;
  disableServicePrincipal(id: string, at: number): Promise<boolean>;
  insertServicePrincipalSecret(s: ServicePrincipalSecretRecord): Promise<void>;
  listServicePrincipalSecrets(spId: string): Promise<ServicePrincipalSecretRecord[]>;
  revokeServicePrincipalSecret(spId: string, secretId: string, at: number): Promise<boolean>;

  /** Live grants (token families): a person's authorization of a client, with its refresh tokens. */
  listOAuthGrants(o: { accountId?: string; now: number; limit: number }): Promise<OAuthGrantSummary[]>;

  // Token and grant revocations, read by every replica's proxy
  insertRevocation(r: RevocationRecord): Promise<void>;
  /**
   * Told (best effort, soon after commit) when any process records a revocation, so that it
   * can poll at once instead of at its next tick; absent where there is no such channel
   * (SQLite: one process). Returns the unsubscribe function.
   */
  onRevocation?(listener: () => void): () => void;
  /** Revocations recorded at or after `since` (epoch ms), oldest first. */
  listRevocationsSince(since: number): Promise<RevocationRecord[]>;
  purgeRevocations(now: number): Promise<number>;

  // Role bindings made through the admin API
  listRoleBindings(): Promise<RoleBindingRecord[]>;
  /** False when the same subject already holds that role by a stored binding. */
  insertRoleBinding(b: RoleBindingRecord): Promise<boolean>;
  deleteRoleBinding(id: string): Promise<RoleBindingRecord | null>;

  // SCIM bearer tokens
  // Agents: delegations and approvals
  insertAgentGrant(g: AgentGrantRecord): Promise<void>;
  getAgentGrant(id: string): Promise<AgentGrantRecord | null>;
  /** A person's grants, newest first (revoked and expired ones too). */
  listAgentGrants(userId: string): Promise<AgentGrantRecord[]>;
  /** False when it is not that person's, or already revoked. */
  revokeAgentGrant(userId: string, id: string, at: number): Promise<boolean>;
  insertApproval(a: ApprovalRecord): Promise<void>;
  getApproval(id: string): Promise<ApprovalRecord | null>;
  /** A person's approvals, newest first. */
  listApprovals(userId: string, limit: number): Promise<ApprovalRecord[]>;
  /** pending → denied, by the person, before it expires. False otherwise. */
  denyApproval(id: string, userId: string, at: number): Promise<boolean>;
  /**
   * approved → used, once: only with the digest it was approved for, before it expires. The
   * single use across replicas is this one statement. False otherwise.
   */
  useApproval(id: string, digest: string, at: number): Promise<boolean>;

  insertScimToken(t: ScimTokenRecord): Promise<void>;
  /** The token with that hash, revoked or not; null when there is none. */
  findScimToken(hash: string): Promise<ScimTokenRecord | null>;
  listScimTokens(): Promise<ScimTokenRecord[]>;
  revokeScimToken(id: string, at: number): Promise<boolean>;
  touchScimToken(id: string, at: number): Promise<void>;

  // Workload federation trusts made through the admin API
  listFederationTrusts(): Promise<FederationTrustRecord[]>;
  /** False when a stored trust of that name exists already. */
  insertFederationTrust(t: FederationTrustRecord): Promise<boolean>;
  deleteFederationTrust(name: string): Promise<FederationTrustRecord | null>;

  // Audit entries waiting for a gateway to chain them (written by the admin CLI)
  enqueueAuditEntry(e: { id: string; at: number; entry: string }): Promise<void>;
  /** The oldest waiting entries. */
  listAuditOutbox(limit: number): Promise<{ id: string; at: number; entry: string }[]>;
  deleteAuditOutbox(ids: readonly string[]): Promise<void>;

  /** Retire the current signing key of a use (a new one is made on next load). */
  retireSigningKeys(use: SigningKeyRecord['use'], at: number): Promise<void>;
}
