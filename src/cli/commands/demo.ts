/**
 * `keygate demo` (what `npm start` runs): the workspace simulator, and a gateway in front of it
 * that holds the simulator's service-principal secret — the only place that secret lives.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { Gateway } from '../../server/gateway.js';
import { EXIT, type Output } from '../output.js';
import { loadOrReport, stopOnSignals } from './serve.js';
import { loadSimulator } from './sim.js';

export interface DemoOptions {
  port: number;
  simPort: number;
  dataDir: string;
  adminEmail: string;
}

export async function demo(o: DemoOptions, out: Output, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const simMod = await loadSimulator();
  const simOpts = simMod.demoSimOptions();
  const sp = simOpts.servicePrincipals?.[0];
  if (!sp) throw new Error('the simulator offers no demo service principal');
  const workspace = await simMod.startSimulator({ ...simOpts, host: '127.0.0.1', port: o.simPort });

  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const secretFile = join(o.dataDir, 'demo-workspace-secret');
  writeFileSync(secretFile, `${sp.clientSecret}\n`, { mode: 0o600 });
  const configFile = join(o.dataDir, 'demo.yaml');
  const config = {
    // Port 0 (any free port) leaves the public URL to be derived once listening.
    ...(o.port === 0 ? {} : { publicUrl: `http://localhost:${o.port}` }),
    listen: { host: '127.0.0.1', port: o.port },
    dataDir: o.dataDir,
    upstreams: {
      workspace: {
        url: workspace.url,
        preset: 'databricks',
        credential: { type: 'databricks-m2m', clientId: sp.clientId, clientSecretFile: secretFile },
      },
    },
  };
  writeFileSync(
    configFile,
    `# Written by \`keygate demo\`: a gateway in front of the workspace simulator.\n${stringify(config)}`,
    { mode: 0o600 },
  );

  const loaded = loadOrReport(configFile, out, env);
  if (!loaded) {
    await workspace.close();
    return EXIT.FAILED;
  }
  const gw = await Gateway.create({ config: loaded.config, env });
  await gw.listen();
  const g = gw.publicOrigin;
  // The first admin: an enrollment link, printed once, while no admin exists yet.
  const firstAdmin =
    (await gw.store.countUsersWithRole('admin')) === 0
      ? await gw.auth.enrollment.invite(g, { email: o.adminEmail, roles: ['admin'], createdBy: 'demo' })
      : undefined;
  out.out(
    [
      '',
      'Keygate demo is running.',
      `  Gateway     ${g}`,
      `  Workspace   ${workspace.url}  (simulator; only the gateway holds its credential)`,
      `  Config      ${resolve(configFile)}`,
      '',
      ...(firstAdmin
        ? [
            `First admin (${firstAdmin.user.email}): open this one-time link in a browser to register a passkey or security key:`,
            `  ${firstAdmin.url}`,
          ]
        : [
            `An admin exists already: log in at ${g}/.keygate/login`,
            `  (lost the key? ./bin/keygate.js admin recover --config ${configFile} EMAIL)`,
          ]),
      '',
      'Then:',
      `  ${g}/api/2.0/serving-endpoints   # in the same browser: the workspace, through Keygate`,
      `  ${g}/.keygate/devices            # your keys: add a backup, rename, revoke`,
      `  ${g}/.keygate/admin/             # the admin console: dashboard, users, keys, audit log`,
      `  curl -i ${g}/api/2.0/serving-endpoints     # 401: nobody gets through without an identity`,
      `  curl ${g}/.keygate/readyz                  # ready: store and workspace credential OK`,
      `  ./bin/keygate.js admin invite --config ${configFile} colleague@example.com`,
      `  ./bin/keygate.js login --gateway ${g}      # tokens for your tools (tap your key), then: keygate token | proxy`,
      `  ./bin/keygate.js admin sp create ci-bot --role ml-reader --config ${configFile}   # a machine identity`,
      '',
      'Press Ctrl-C to stop (in-flight requests are drained first).',
    ].join('\n'),
  );
  await stopOnSignals(async () => {
    await gw.close();
    await workspace.close();
  }, out);
  return EXIT.OK;
}
