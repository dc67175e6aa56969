// Public entry point of the Databricks workspace simulator. Nothing in src/ imports this folder.
export { DEMO_ALICE, DEMO_BOB, DEMO_PAT, DEMO_SP, DEMO_SP_SECRET, demoSimOptions } from './demo.js';
export { startSimulator } from './server.js';
export type {
  RecordedRequest,
  SimFederationPolicy,
  SimIdentity,
  SimOptions,
  Simulator,
  TokenRequestRecord,
} from './types.js';
