/**
 * Shipped roles (DESIGN.md §6). Config may add roles or replace one of these by name.
 * A grant is actions on resources: `*`, `Endpoint::*`, `Endpoint::fraud-*`, `Model::main.ml.*`.
 */
import { type Action, ACTION_NAMES } from './actions.js';

export interface Grant {
  actions: (Action | '*')[];
  resources: string[];
}

export interface RoleDef {
  description: string;
  grants: Grant[];
}

const read: Action[] = ['serving:read', 'mlflow:read', 'jobs:read', 'workspace:read', 'api:read'];
const invoke: Action[] = ['serving:invoke', 'api:invoke'];
const engineer: Action[] = [...read, ...invoke, 'mlflow:write', 'jobs:run'];
const deployer: Action[] = [...engineer, 'serving:manage', 'mlflow:promote', 'jobs:manage', 'api:manage'];

export const SHIPPED_ROLES: Record<string, RoleDef> = {
  'ml-reader': { description: 'Read endpoints, experiments, models and jobs.', grants: [{ actions: read, resources: ['*'] }] },
  'ml-inference': {
    description: 'Query serving endpoints.',
    grants: [{ actions: [...invoke, 'serving:read', 'workspace:read', 'api:read'], resources: ['*'] }],
  },
  'ml-engineer': {
    description: 'Read, query, log to MLflow and run jobs.',
    grants: [{ actions: engineer, resources: ['*'] }],
  },
  'ml-deployer': {
    description: 'Everything an engineer does, plus deploy endpoints, promote models and manage jobs (step-up).',
    grants: [{ actions: deployer, resources: ['*'] }],
  },
  admin: {
    description: 'Every action except minting long-lived upstream credentials.',
    grants: [{ actions: ACTION_NAMES.filter((a) => a !== 'credentials:mint'), resources: ['*'] }],
  },
};
