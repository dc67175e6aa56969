import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from './load.js';
import { runtimeIssues } from './runtime-check.js';

const upstream = { url: 'http://127.0.0.1:8081', credential: { type: 'static', tokenEnv: 'TOKEN' } };

function issuesOf(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

function yamlFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kg-cfg-'));
  const f = join(dir, 'keygate.yaml');
  writeFileSync(f, text);
  return f;
}

describe('config schema', () => {
  it('no config at all is the embedded default: SQLite under ./.keygate, 127.0.0.1', () => {
    const c = parseConfig({});
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(c.dataDir).toBe('./.keygate');
    expect(c.store.driver).toBe('sqlite');
    expect(c.upstreams).toEqual({});
  });

  it('the validated config is frozen, deeply', () => {
    const c = parseConfig({ upstreams: { ws: upstream } });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.upstreams.ws?.timeouts)).toBe(true);
    expect(() => {
      (c.listen as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('units: durations and sizes become milliseconds and bytes', () => {
    const c = parseConfig({
      upstreams: { ws: { ...upstream, timeouts: { connect: '250ms', headers: '2m' }, maxRequestBodyBytes: '200MiB' } },
    });
    expect(c.upstreams.ws?.timeouts).toEqual({ connect: 250, headers: 120_000, body: 300_000 });
    expect(c.upstreams.ws?.maxRequestBodyBytes).toBe(200 * 1024 * 1024);
  });

  it.each([
    [{ listen: { prot: 1 } }, 'listen.prot: unknown key'],
    [{ colour: 'blue' }, 'colour: unknown key'],
    [
      {
        upstreams: { a: upstream },
        routes: [
          { prefix: '/', upstream: 'a' },
          { prefix: '/x', upstream: 'a' },
          { prefix: '/y', upstream: 'b' },
        ],
      },
      'routes[2].upstream: unknown upstream "b"',
    ],
    [
      { upstreams: { ws: { ...upstream, url: 'not a url' } } },
      'upstreams.ws.url: must be a URL (http or https, without credentials)',
    ],
    [
      { upstreams: { ws: { ...upstream, url: 'http://user:pw@host' } } },
      'upstreams.ws.url: must be a URL (http or https, without credentials)',
    ],
    [{ upstreams: { ws: { url: 'http://a' } } }, 'upstreams.ws.credential: is required'],
    [
      { upstreams: { ws: { ...upstream, credential: { type: 'magic' } } } },
      'upstreams.ws.credential.type: must have type static, databricks-m2m, databricks-federation or none',
    ],
    [
      { upstreams: { ws: { ...upstream, credential: { type: 'databricks-federation' } } } },
      'publicUrl: must be set: upstream "ws" uses databricks-federation, whose issuer it is',
    ],
    [
      {
        publicUrl: 'https://kg.example',
        upstreams: { ws: { ...upstream, credential: { type: 'databricks-federation', audience: `${upstream.url}/` } } },
      },
      "upstreams.ws.credential.audience: must differ from every upstream URL and from publicUrl: Keygate's other tokens carry those audiences",
    ],
    [
      {
        publicUrl: 'https://kg.example',
        upstreams: {
          ws: { ...upstream, credential: { type: 'databricks-federation', audience: 'https://kg.example' } },
        },
      },
      "upstreams.ws.credential.audience: must differ from every upstream URL and from publicUrl: Keygate's other tokens carry those audiences",
    ],
    [
      {
        publicUrl: 'https://kg.example',
        upstreams: { ws: { ...upstream, credential: { type: 'databricks-federation', jwtLifetime: '90s' } } },
      },
      'upstreams.ws.credential.jwtLifetime: must be between 2m and 1h',
    ],
    [
      {
        publicUrl: 'https://kg.example',
        upstreams: { ws: { ...upstream, credential: { type: 'databricks-federation', subjectClaim: 'aud' } } },
      },
      'upstreams.ws.credential.subjectClaim: must not be iss, aud, exp, nbf, iat or jti',
    ],
    [
      {
        publicUrl: 'https://kg.example',
        upstreams: {
          ws: {
            ...upstream,
            credential: {
              type: 'databricks-federation',
              servicePrincipals: [
                { keygateId: 'a', clientId: 'x' },
                { keygateId: 'a', clientId: 'y' },
              ],
            },
          },
        },
      },
      'upstreams.ws.credential.servicePrincipals[1].keygateId: duplicate "a"',
    ],
    [
      {
        publicUrl: 'https://kg.example',
        upstreams: {
          ws: {
            ...upstream,
            credential: { type: 'databricks-federation', dangerouslyFallBackToServicePrincipal: { clientId: 'x' } },
          },
        },
      },
      'upstreams.ws.credential.dangerouslyFallBackToServicePrincipal: set exactly one of clientSecretEnv or clientSecretFile',
    ],
    [
      { upstreams: { ws: { ...upstream, credential: { type: 'static' } } } },
      'upstreams.ws.credential: set exactly one of tokenEnv or tokenFile',
    ],
    [{ store: { driver: 'postgres' } }, 'store: driver postgres needs exactly one of url and urlEnv'],
    [
      { store: { driver: 'postgres', url: 'postgres://db/keygate', urlEnv: 'PG_URL' } },
      'store: driver postgres needs exactly one of url and urlEnv',
    ],
    [{ store: { driver: 'postgres', url: 'mysql://db/keygate' } }, 'store.url: must be a postgres:// URL'],
    [
      { upstreams: { ws: { ...upstream, credential: { type: 'static', tokenEnv: 'A', extra: 1 } } } },
      'upstreams.ws.credential.extra: unknown key',
    ],
    [{ upstreams: { WS: upstream } }, 'upstreams.WS: upstream names are lowercase letters, digits and -'],
    [{ listen: { port: 70000 } }, 'listen.port: must be at most 65535'],
    [{ listen: { port: 'eighty' } }, 'listen.port: must be a number'],
    [
      { shutdown: { drainTimeout: '5 parsecs' } },
      'shutdown.drainTimeout: must be a duration such as 500ms, 30s, 5m or 1h',
    ],
    [
      { log: { level: 'loud' } },
      'log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent"',
    ],
    [{ trustedProxies: ['10.0.0.0/33'] }, 'trustedProxies[0]: must be an IP address or CIDR range such as 10.0.0.0/8'],
    [{ routes: [{ prefix: 'api', upstream: 'x' }] }, 'routes[0].prefix: must start with /'],
    [
      { publicUrl: 'http://kg.example', tls: { certFile: 'c', keyFile: 'k' } },
      'publicUrl: must be https when tls is set',
    ],
  ])('%j → %s', (raw, expected) => {
    expect(issuesOf(raw)).toContain(expected);
  });

  it('reports every problem at once, not only the first', () => {
    expect(issuesOf({ listen: { prot: 1 }, log: { level: 'loud' } })).toHaveLength(2);
  });
});

describe('loading', () => {
  it('reads YAML and names the file in errors', () => {
    const f = yamlFile('listen:\n  port: 9000\n  hots: x\n');
    expect(() => loadConfig({ file: f, env: {} })).toThrow(`${f}: listen.hots: unknown key`);
  });

  it('refuses malformed YAML and duplicate keys with a clear message', () => {
    expect(() => loadConfig({ file: yamlFile('listen: [\n'), env: {} })).toThrow(/YAML:/);
    expect(() => loadConfig({ file: yamlFile('dataDir: a\ndataDir: b\n'), env: {} })).toThrow(/YAML: .*unique/i);
  });

  it('refuses a file that is not a mapping', () => {
    expect(() => loadConfig({ file: yamlFile('- a\n- b\n'), env: {} })).toThrow('must be a YAML mapping');
  });

  it('names a missing file', () => {
    expect(() => loadConfig({ file: '/nonexistent/keygate.yaml', env: {} })).toThrow('cannot read file (ENOENT)');
  });

  it('KEYGATE_* variables override the file, typed by the schema', () => {
    const f = yamlFile('listen:\n  port: 9000\nlog:\n  requests: true\n');
    const { config } = loadConfig({
      file: f,
      env: {
        KEYGATE_LISTEN_PORT: '9100',
        KEYGATE_LOG_REQUESTS: 'false',
        KEYGATE_TRUSTED_PROXIES: '10.0.0.0/8, ::1',
        KEYGATE_PUBLIC_URL: 'https://kg.example.com',
      },
    });
    expect(config.listen.port).toBe(9100);
    expect(config.log.requests).toBe(false);
    expect(config.trustedProxies).toEqual(['10.0.0.0/8', '::1']);
    expect(config.publicUrl).toBe('https://kg.example.com');
  });

  it('KEYGATE_CONFIG names the file', () => {
    const f = yamlFile('listen:\n  port: 9200\n');
    expect(loadConfig({ env: { KEYGATE_CONFIG: f } }).config.listen.port).toBe(9200);
  });

  it('an unknown KEYGATE_* variable is an error, not silently ignored', () => {
    expect(() => loadConfig({ file: yamlFile('{}\n'), env: { KEYGATE_LISTEN_PROT: '1' } })).toThrow(
      'environment: KEYGATE_LISTEN_PROT: not a Keygate setting',
    );
  });

  it("the people's CLI variables (KEYGATE_HOME, KEYGATE_GATEWAY) do not make a gateway config invalid", () => {
    const env = { KEYGATE_HOME: '/tmp/kg-home', KEYGATE_GATEWAY: 'https://keygate.example.com' };
    expect(loadConfig({ file: yamlFile('listen:\n  port: 9201\n'), env }).config.listen.port).toBe(9201);
  });

  it('an override with the wrong type names the setting path', () => {
    expect(() => loadConfig({ file: yamlFile('{}\n'), env: { KEYGATE_LISTEN_PORT: 'high' } })).toThrow(
      'listen.port: must be a number',
    );
  });
});

describe('runtime checks', () => {
  it('names credential variables and files that are missing', () => {
    const c = parseConfig({
      upstreams: {
        a: upstream,
        b: {
          url: 'http://b',
          credential: { type: 'databricks-m2m', clientId: 'x', clientSecretFile: '/nonexistent/secret' },
        },
      },
    });
    expect(runtimeIssues(c, {})).toEqual([
      { path: 'upstreams.a.credential.tokenEnv', message: 'environment variable TOKEN is not set' },
      { path: 'upstreams.b.credential.clientSecretFile', message: 'cannot read /nonexistent/secret' },
    ]);
    expect(runtimeIssues(parseConfig({ upstreams: { a: upstream } }), { TOKEN: 't' })).toEqual([]);
    const federated = parseConfig({
      publicUrl: 'https://kg.example',
      upstreams: {
        a: {
          url: 'http://a',
          credential: {
            type: 'databricks-federation',
            dangerouslyFallBackToServicePrincipal: { clientId: 'x', clientSecretEnv: 'FALLBACK' },
          },
        },
      },
    });
    expect(runtimeIssues(federated, {})).toEqual([
      {
        path: 'upstreams.a.credential.dangerouslyFallBackToServicePrincipal.clientSecretEnv',
        message: 'environment variable FALLBACK is not set',
      },
    ]);
  });
});
