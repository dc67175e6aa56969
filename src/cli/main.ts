/**
 * The CLI is a thin shim over commander: each command lives in its own file, failures print
 * one clear line and set the exit code.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { adminInvite, adminRecover } from './commands/admin.js';
import {
  adminKeysRotate,
  adminSpCreate,
  adminSpList,
  adminSpRevokeSecret,
  adminSpRotate,
} from './commands/admin-sp.js';
import {
  groupsCreate,
  groupsDelete,
  groupsList,
  groupsMember,
  groupsShow,
  remoteInvite,
  remoteRecover,
  remoteSpCreate,
  remoteSpDisable,
  remoteSpList,
  remoteSpRevokeSecret,
  remoteSpRotate,
  usersChange,
  usersList,
  usersRevokeKey,
  usersShow,
  withAdminApi,
} from './commands/admin-remote.js';
import { agentGrant, agentList, agentRevoke } from './commands/agent.js';
import { auditExport, auditTail, auditVerify, type TailOptions } from './commands/audit.js';
import { configCheck } from './commands/config-check.js';
import { demo } from './commands/demo.js';
import { login } from './commands/login.js';
import { logout } from './commands/logout.js';
import { type PolicyTestOptions, policyTest } from './commands/policy-test.js';
import { proxy } from './commands/proxy.js';
import { serve } from './commands/serve.js';
import { sim } from './commands/sim.js';
import { token } from './commands/token.js';
import { whoami } from './commands/whoami.js';
import { EXIT, type Output, stdio } from './output.js';

/** A public JWK or JWKS file, as a JWKS. */
function readJwks(file: string): { keys: unknown[] } {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { keys?: unknown[] };
  return Array.isArray(doc.keys) ? { keys: doc.keys } : { keys: [doc] };
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

export function buildProgram(out: Output, setCode: (c: number) => void): Command {
  const program = new Command('keygate')
    .description('Identity-aware gateway for ML platforms')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.out(s.trimEnd()), writeErr: (s) => out.err(s.trimEnd()) })
    .showHelpAfterError('(run keygate --help for usage)');

  program
    .command('serve')
    .description('run the gateway (keygate.yaml, KEYGATE_CONFIG or the embedded default)')
    .option('-c, --config <file>', 'config file')
    .option(
      '--store <url>',
      'a postgres:// URL: share the store with other replicas (same as store.driver postgres, store.url)',
    )
    .action(async (o: { config?: string; store?: string }) =>
      setCode(
        await serve(
          o.config,
          out,
          o.store === undefined
            ? process.env
            : { ...process.env, KEYGATE_STORE_DRIVER: 'postgres', KEYGATE_STORE_URL: o.store },
        ),
      ),
    );

  program
    .command('sim')
    .description('run the Databricks workspace simulator')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('-p, --port <port>', 'port to listen on', port, 8081)
    .action(async (o: { host: string; port: number }) => setCode(await sim(o, out)));

  program
    .command('demo')
    .description('run the simulator and a gateway in front of it (what `npm start` runs)')
    .option('-p, --port <port>', 'gateway port', port, 8443)
    .option('--sim-port <port>', 'simulator port', port, 8081)
    .option('--data-dir <dir>', 'where the demo keeps its database and config', './.keygate')
    .option('--admin-email <email>', 'the first admin, invited when no admin exists', 'admin@example.com')
    .action(async (o: { port: number; simPort: number; dataDir: string; adminEmail: string }) =>
      setCode(await demo(o, out)),
    );

  // The people's commands: sign this terminal in, and use the gateway with its DPoP-bound tokens.
  const gatewayHelp =
    'gateway URL (default $KEYGATE_GATEWAY, else the last one logged in to, else http://localhost:8443)';
  program
    .command('login')
    .description('sign in to a gateway: in a browser (loopback redirect + PKCE) or, with --device, on another device')
    .option('-g, --gateway <url>', gatewayHelp)
    .option('--device', 'device authorization grant: print a code to enter on any device')
    .option('--no-browser', 'do not open a browser; print the URL')
    .action(async (o: { gateway?: string; device?: boolean; browser: boolean }) => setCode(await login(o, out)));
  program
    .command('token')
    .description('print a short-lived bearer token for the gateway (refreshed as needed)')
    .option('-g, --gateway <url>', gatewayHelp)
    .option('--dpop', 'print the DPoP-bound access token instead (needs a DPoP proof on every request)')
    .action(async (o: { gateway?: string; dpop?: boolean }) => setCode(await token(o, out)));
  program
    .command('whoami')
    .description('show who the current token belongs to')
    .option('-g, --gateway <url>', gatewayHelp)
    .action(async (o: { gateway?: string }) => setCode(await whoami(o, out)));
  program
    .command('logout')
    .description('revoke the refresh token at the gateway and delete the local credentials')
    .option('-g, --gateway <url>', gatewayHelp)
    .action(async (o: { gateway?: string }) => setCode(await logout(o, out)));
  program
    .command('proxy')
    .description('forward 127.0.0.1:PORT to the gateway, signing each request (DATABRICKS_HOST=http://127.0.0.1:PORT)')
    .option('-p, --port <port>', 'local port (0 = any free port)', port, 0)
    .option('-g, --gateway <url>', gatewayHelp)
    .action(async (o: { port: number; gateway?: string }) => setCode(await proxy(o, out)));

  const config = program.command('config').description('configuration tools');
  config
    .command('check')
    .description(
      'validate a config file (and the environment it needs); prints the problems or "ok", then what to enter in the workspace for databricks-federation',
    )
    .argument('[file]', 'config file')
    .option(
      '--probe [email]',
      'also exchange one token per databricks-federation upstream (as probeUser, or this email) against the running gateway',
    )
    .action(async (file: string | undefined, o: { probe?: boolean | string }) =>
      setCode(await configCheck(file, out, process.env, o)),
    );

  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('walk the hash chain and the signed checkpoints; exit 1 at the first broken or missing record')
    .option('-c, --config <file>', 'config file')
    .option('--file <audit.db>', 'an audit database other than the configured one')
    .action(async (o: { config?: string; file?: string }) => setCode(await auditVerify(o, out)));
  audit
    .command('export')
    .description('print the records of a time range as JSON Lines (each with seq, prevHash and hash) or OCSF')
    .option('--since <time>', 'from this time (ISO 8601 or epoch ms), inclusive')
    .option('--until <time>', 'until this time, exclusive')
    .option('--format <format>', 'jsonl, or ocsf (OCSF 1.4 events, the record kept in unmapped.keygate)', 'jsonl')
    .option('-c, --config <file>', 'config file')
    .option('--file <audit.db>', 'an audit database other than the configured one')
    .action(async (o: { config?: string; file?: string; since?: string; until?: string; format: string }) =>
      setCode(await auditExport(o, out)),
    );
  audit
    .command('tail')
    .description('print the latest records (filtered), and with --follow new ones as they are written')
    .option('-n, --lines <n>', 'how many', (v) => Number(v), 20)
    .option('--kind <kind>', 'only this kind, e.g. http.request or auth.login')
    .option('--actor <id>', 'only this principal id')
    .option('--action <action>', 'only this action, e.g. serving:invoke')
    .option('--decision <effect>', 'only this decision: allow, deny, step_up or error')
    .option('-f, --follow', 'keep printing new records', false)
    .option('-c, --config <file>', 'config file')
    .option('--file <audit.db>', 'an audit database other than the configured one')
    .action(async (o: TailOptions) => setCode(await auditTail(o, out)));

  const agent = program
    .command('agent')
    .description('delegate actions to an AI agent (a service principal) that acts for you, and end delegations');
  const AGENT_GATEWAY = "the gateway's URL (default: $KEYGATE_GATEWAY or the one you logged in to)";
  agent
    .command('grant')
    .description('let an agent act for you: prints the grant id it exchanges for short tokens')
    .requiredOption('--agent <name>', "the agent's service principal (name or id)")
    .requiredOption('--actions <list>', 'comma-separated actions, e.g. serving:invoke,mlflow:read')
    .option('--ttl <duration>', 'how long the grant lasts (at most agents.maxGrantLifetime)', '8h')
    .option('--gateway <url>', AGENT_GATEWAY)
    .action(async (o: { agent: string; actions: string; ttl: string; gateway?: string }) =>
      setCode(await agentGrant(o, out)),
    );
  agent
    .command('list')
    .description('your delegations: agent, actions, until when, live or not')
    .option('--gateway <url>', AGENT_GATEWAY)
    .action(async (o: { gateway?: string }) => setCode(await agentList(o, out)));
  agent
    .command('revoke')
    .description("end a delegation: the agent's tokens from it are refused at once")
    .argument('<grant-id>', 'as printed by keygate agent grant or list')
    .option('--gateway <url>', AGENT_GATEWAY)
    .action(async (id: string, o: { gateway?: string }) => setCode(await agentRevoke(id, o, out)));

  const policy = program.command('policy').description('authorization policy tools');
  policy
    .command('test')
    .description('evaluate a described request against the configured policies, offline')
    .requiredOption('--principal <kind:id>', 'user:EMAIL, sp:ID or agent:ID')
    .option('--groups <list>', 'comma-separated groups')
    .option('--roles <list>', 'comma-separated roles held directly')
    .option('--action <action>', 'an action such as serving:manage')
    .option('--resource <Type::name>', 'e.g. Endpoint::fraud (default Workspace::workspace)')
    .option('--method <method>', 'HTTP method of a real request', 'GET')
    .option('--path <path>', 'a real request path, classified by the Databricks preset')
    .option('--body <json>', 'request body, for routes that name the resource in it')
    .option('--auth-age <seconds>', 'seconds since the login', (v) => Number(v), 10)
    .option('--no-uv', 'the login did not verify the user')
    .option('--ip <address>', 'client address', '127.0.0.1')
    .option('--expect <decision>', 'exit 1 unless the decision is allow, deny or step_up')
    .option('-c, --config <file>', 'config file')
    .action(async (o: PolicyTestOptions) => setCode(await policyTest(o, out)));

  const admin = program
    .command('admin')
    .description(
      'administration: on the local store (works before any admin exists), or with --gateway through a running gateway as you (keygate login first)',
    );
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  const GATEWAY_HELP = "a running gateway's URL: go through its admin API as the person logged in there";
  const remote = (o: { gateway?: string }, fn: Parameters<typeof withAdminApi>[2]) =>
    withAdminApi(o, out, fn).then(setCode);
  admin
    .command('invite')
    .description('create a user (if new) and print a one-time enrollment link')
    .argument('<email>', 'their email address')
    .option('-r, --role <role>', 'role to grant (repeatable), e.g. admin', collect)
    .option('-n, --name <name>', 'display name')
    .option('-c, --config <file>', 'config file')
    .option('--gateway <url>', GATEWAY_HELP)
    .action(async (email: string, o: { role?: string[]; name?: string; config?: string; gateway?: string }) =>
      o.gateway !== undefined
        ? remote(o, (api) => remoteInvite(email, o, api, out))
        : setCode(await adminInvite(email, o, out)),
    );
  admin
    .command('recover')
    .description('print a one-time recovery link that lets a user register a new key')
    .argument('<email>', 'their email address')
    .option('-c, --config <file>', 'config file')
    .option('--gateway <url>', GATEWAY_HELP)
    .action(async (email: string, o: { config?: string; gateway?: string }) =>
      o.gateway !== undefined
        ? remote(o, (api) => remoteRecover(email, api, out))
        : setCode(await adminRecover(email, o, out)),
    );

  // People and groups: through a gateway only (--gateway, $KEYGATE_GATEWAY or the last login).
  const users = admin
    .command('users')
    .description('people: list, show, disable, enable, delete, revoke a key (through a gateway)');
  users
    .command('list', { isDefault: true })
    .description('email, id, roles, groups and state of every user (or those matching --query)')
    .option('-q, --query <text>', 'only users whose email or name contains this')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((o: { query?: string; gateway?: string }) => remote(o, (api) => usersList(o, api, out)));
  users
    .command('show')
    .description("a user's roles, groups, keys and live sessions")
    .argument('<user>', 'email or user id')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((user: string, o: { gateway?: string }) => remote(o, (api) => usersShow(user, api, out)));
  for (const [verb, what] of [
    ['disable', 'end their sessions and token families at once and refuse their logins'],
    ['enable', 'let a disabled user log in again'],
    ['delete', 'delete the user; their sessions, tokens and keys end at once (their audit records stay)'],
  ] as const) {
    users
      .command(verb)
      .description(what)
      .argument('<user>', 'email or user id')
      .option('--gateway <url>', GATEWAY_HELP)
      .action((user: string, o: { gateway?: string }) => remote(o, (api) => usersChange(verb, user, api, out)));
  }
  users
    .command('revoke-key')
    .description("revoke one of a user's keys (see `users show` for key ids); sessions made with it end")
    .argument('<user>', 'email or user id')
    .argument('<credential-id>', 'the key id')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((user: string, cred: string, o: { gateway?: string }) =>
      remote(o, (api) => usersRevokeKey(user, cred, api, out)),
    );

  const groups = admin
    .command('groups')
    .description('groups and their members; roles come from groups (through a gateway)');
  groups
    .command('list', { isDefault: true })
    .description('groups, member counts and the roles bound to them')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((o: { gateway?: string }) => remote(o, (api) => groupsList(api, out)));
  groups
    .command('show')
    .description('a group, its roles and members')
    .argument('<group>', 'name or id')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((group: string, o: { gateway?: string }) => remote(o, (api) => groupsShow(group, api, out)));
  groups
    .command('create')
    .description('create a group; prints its id')
    .argument('<name>', 'the group name policies and bindings use')
    .option('-d, --description <text>', 'what it is for')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((name: string, o: { description?: string; gateway?: string }) =>
      remote(o, (api) => groupsCreate(name, o, api, out)),
    );
  groups
    .command('delete')
    .description('delete a group; its members lose it at their next request')
    .argument('<group>', 'name or id')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((group: string, o: { gateway?: string }) => remote(o, (api) => groupsDelete(group, api, out)));
  for (const [verb, add] of [
    ['add', true],
    ['remove', false],
  ] as const) {
    groups
      .command(verb)
      .description(add ? 'add a person to a group' : 'remove a person from a group')
      .argument('<group>', 'name or id')
      .argument('<user>', 'email or user id')
      .option('--gateway <url>', GATEWAY_HELP)
      .action((group: string, user: string, o: { gateway?: string }) =>
        remote(o, (api) => groupsMember(add, group, user, api, out)),
      );
  }

  const sp = admin.command('sp').description('service principals: machines (CI, schedulers, agents) as OAuth clients');
  sp.command('create')
    .description('create a service principal; prints CLIENT_ID:SECRET once (or only the id with --no-secret / --jwks)')
    .argument('<name>', 'a name such as ci-deployer')
    .option('-r, --role <role>', 'role to grant (repeatable)', collect)
    .option('-d, --description <text>', 'what it is for')
    .option('--no-secret', 'no secret: federation (tokens.federation) only')
    .option('--jwks <file>', 'a public JWK or JWKS file: authenticate with private_key_jwt instead of a secret')
    .option('-c, --config <file>', 'config file')
    .option('--gateway <url>', GATEWAY_HELP)
    .action(
      async (
        name: string,
        o: { role?: string[]; description?: string; secret: boolean; jwks?: string; config?: string; gateway?: string },
      ) =>
        o.gateway !== undefined
          ? remote(o, (api) =>
              remoteSpCreate(
                name,
                {
                  secret: o.secret,
                  ...(o.role === undefined ? {} : { role: o.role }),
                  ...(o.description === undefined ? {} : { description: o.description }),
                  ...(o.jwks === undefined ? {} : { jwks: readJwks(o.jwks) }),
                },
                api,
                out,
              ),
            )
          : setCode(await adminSpCreate(name, o, out)),
    );
  sp.command('rotate')
    .description('issue a new secret; the previous one stays valid (two at most) until revoked or expired')
    .argument('<name>', 'name or client id')
    .option('-c, --config <file>', 'config file')
    .option('--gateway <url>', GATEWAY_HELP)
    .action(async (name: string, o: { config?: string; gateway?: string }) =>
      o.gateway !== undefined
        ? remote(o, (api) => remoteSpRotate(name, api, out))
        : setCode(await adminSpRotate(name, o, out)),
    );
  sp.command('revoke-secret')
    .description('revoke one secret of a service principal (see `sp list` for secret ids)')
    .argument('<name>', 'name or client id')
    .argument('<secret-id>', 'the secret id')
    .option('-c, --config <file>', 'config file')
    .option('--gateway <url>', GATEWAY_HELP)
    .action(async (name: string, id: string, o: { config?: string; gateway?: string }) =>
      o.gateway !== undefined
        ? remote(o, (api) => remoteSpRevokeSecret(name, id, api, out))
        : setCode(await adminSpRevokeSecret(name, id, o, out)),
    );
  sp.command('disable')
    .description(
      'disable a service principal: no new tokens, and the ones it has are refused at once (through a gateway)',
    )
    .argument('<name>', 'name or client id')
    .option('--gateway <url>', GATEWAY_HELP)
    .action((name: string, o: { gateway?: string }) => remote(o, (api) => remoteSpDisable(name, api, out)));
  sp.command('list')
    .description('list service principals, their roles and live secrets')
    .option('-c, --config <file>', 'config file')
    .option('--gateway <url>', GATEWAY_HELP)
    .action(async (o: { config?: string; gateway?: string }) =>
      o.gateway !== undefined ? remote(o, (api) => remoteSpList(api, out)) : setCode(await adminSpList(o, out)),
    );
  admin
    .command('keys')
    .description('token signing keys')
    .command('rotate')
    .description('retire the current token signing key now; its public key stays published until its tokens expire')
    .option('-c, --config <file>', 'config file')
    .action(async (o: { config?: string }) => setCode(await adminKeysRotate(o, out)));

  return program;
}

export async function main(argv: string[], out: Output = stdio): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(out, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0.
      return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    out.err(`keygate: ${(e as Error).message}`);
    return EXIT.FAILED;
  }
  return code;
}
