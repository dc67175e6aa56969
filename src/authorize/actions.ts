/**
 * The action catalogue (DESIGN.md §5): every proxied request is classified into exactly one
 * of these. Sensitive actions need a fresh, user-verified authentication (step-up).
 */
export const ACTIONS = {
  'serving:invoke': { sensitive: false, what: 'query a serving endpoint' },
  'serving:read': { sensitive: false, what: 'read serving endpoints' },
  'serving:manage': { sensitive: true, what: 'create, reconfigure or delete a serving endpoint' },
  'mlflow:read': { sensitive: false, what: 'read MLflow experiments, runs and models' },
  'mlflow:write': { sensitive: false, what: 'write MLflow experiments, runs and models' },
  'mlflow:promote': { sensitive: true, what: 'promote, alias or delete a registered model' },
  'jobs:read': { sensitive: false, what: 'read jobs and runs' },
  'jobs:run': { sensitive: false, what: 'run a job' },
  'jobs:manage': { sensitive: true, what: 'create, change or delete a job' },
  'secrets:read': { sensitive: true, what: 'read secrets' },
  'secrets:write': { sensitive: true, what: 'write secrets' },
  'credentials:mint': { sensitive: true, what: 'mint a long-lived upstream credential' },
  'workspace:read': { sensitive: false, what: 'read workspace metadata' },
  'workspace:other': { sensitive: false, what: 'call an unclassified workspace API' },
  // Generic preset: configured prefixes map to these.
  'api:read': { sensitive: false, what: 'read the API' },
  'api:invoke': { sensitive: false, what: 'call the API' },
  'api:manage': { sensitive: true, what: 'manage the API' },
  // Keygate's own admin API (resource Keygate::<area>: users, groups, credentials,
  // service-principals, sessions, invitations, audit, policy).
  'admin:read': { sensitive: false, what: "read Keygate's users, keys, principals, sessions and audit log" },
  'admin:manage': { sensitive: true, what: "change Keygate's users, keys, principals and sessions" },
} as const;

export type Action = keyof typeof ACTIONS;
export const ACTION_NAMES = Object.keys(ACTIONS) as Action[];

export function isSensitive(a: Action): boolean {
  return ACTIONS[a].sensitive;
}
