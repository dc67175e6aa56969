/** The Cedar schema every policy — generated or hand-written — is validated against at start. */
import { ACTION_NAMES } from '../actions.js';

export const CEDAR_SCHEMA = `
entity Group, Role;
entity User in [Group, Role] { email: String };
entity ServicePrincipal in [Group, Role] { name: String };
entity Agent in [Group, Role] { name: String, user?: User };
entity Workspace;
entity Endpoint, Model, Job, Api in [Workspace] { name: String };
entity Keygate { name: String };
type AuthContext = {
  method: String,
  uv: Bool,
  age_s: Long,
  fresh: Bool,
  aaguid: String,
  attested: Bool,
  device_bound: Bool,
};
type RequestContext = { ip: String, method: String, path: String };
action ${ACTION_NAMES.map((a) => JSON.stringify(a)).join(', ')} appliesTo {
  principal: [User, ServicePrincipal, Agent],
  resource: [Workspace, Endpoint, Model, Job, Api, Keygate],
  context: { auth: AuthContext, request: RequestContext },
};
`;
