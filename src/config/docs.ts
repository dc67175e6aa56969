/**
 * docs/configuration.md and the editor JSON Schema, generated from the one config schema.
 * `npm run docs:config` writes them; src/config/docs.test.ts fails when they are stale.
 */
import { configJsonSchema, envName, envSettings } from './env.js';

interface Node {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, Node>;
  additionalProperties?: Node | boolean;
  items?: Node;
  anyOf?: Node[];
  oneOf?: Node[];
  enum?: unknown[];
  const?: unknown;
  required?: string[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
}

export function editorSchema(): string {
  const schema = configJsonSchema();
  return `${JSON.stringify({ ...schema, title: 'Keygate configuration (keygate.yaml)' }, null, 2)}\n`;
}

function typeOf(n: Node): string {
  if (n.const !== undefined) return `\`${JSON.stringify(n.const)}\``;
  if (n.enum) return n.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  const alts = n.anyOf ?? n.oneOf;
  if (alts) return [...new Set(alts.map(typeOf))].join(' \\| ');
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'values'}`;
  if (n.type === 'object' && n.additionalProperties && typeof n.additionalProperties === 'object') {
    return 'map of name → object';
  }
  return Array.isArray(n.type) ? n.type.join(' \\| ') : (n.type ?? 'any');
}

function cell(s: string): string {
  return s.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function configurationMarkdown(): string {
  const root = configJsonSchema() as Node;
  const env = new Map([...envSettings().entries()].map(([name, leaf]) => [leaf.path.join('.'), name]));
  const rows: string[] = [];
  const walk = (n: Node, path: string, required: boolean) => {
    const alts = n.oneOf ?? n.anyOf;
    const objectAlts = alts?.filter((a) => a.properties);
    if (objectAlts && objectAlts.length > 0) {
      rows.push(row(path, n, required, env));
      for (const a of objectAlts) {
        const tag = a.properties?.type?.const;
        const sub = tag === undefined ? path : `${path} (type: ${String(tag)})`;
        for (const [k, child] of Object.entries(a.properties ?? {})) {
          if (k === 'type') continue;
          walk(child, `${sub}.${k}`, a.required?.includes(k) ?? false);
        }
      }
      return;
    }
    if (n.properties) {
      if (path !== '') rows.push(row(path, n, required, env));
      for (const [k, child] of Object.entries(n.properties)) {
        walk(child, path === '' ? k : `${path}.${k}`, n.required?.includes(k) ?? false);
      }
      return;
    }
    if (n.type === 'object' && n.additionalProperties && typeof n.additionalProperties === 'object') {
      rows.push(row(path, n, required, env));
      walk(n.additionalProperties, `${path}.<name>`, true);
      return;
    }
    if (n.type === 'array' && n.items?.properties) {
      rows.push(row(path, n, required, env));
      walk(n.items, `${path}[]`, true);
      return;
    }
    rows.push(row(path, n, required, env));
  };
  walk(root, '', false);
  return [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'Keygate reads one YAML file: `keygate serve --config FILE`, else `$KEYGATE_CONFIG`, else',
    '`./keygate.yaml` if present, else the embedded default (SQLite under `./.keygate/`, listening',
    'on 127.0.0.1:8443, no upstreams). Unknown keys are errors; every error names its path',
    '(`routes[2].upstream: unknown upstream "x"`). `keygate config check [file]` validates a file',
    'and the environment it needs. An editor schema is in `docs/keygate.schema.json`',
    '(`# yaml-language-server: $schema=./docs/keygate.schema.json`).',
    '',
    'Settings outside `upstreams` and `routes` can be overridden by environment variables named',
    `after their path (\`listen.port\` → \`${envName(['listen', 'port'])}\`); lists are comma-separated.`,
    'Unknown `KEYGATE_*` variables are errors. Durations take `ms`, `s`, `m`, `h`, `d`; sizes',
    'take `B`, `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`.',
    '',
    '| setting | type | default | required | environment | description |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    '## Example',
    '',
    '```yaml',
    'publicUrl: https://keygate.example.com',
    'listen: { host: 0.0.0.0, port: 8443 }',
    'trustedProxies: [10.0.0.0/8]',
    'upstreams:',
    '  workspace:',
    '    url: https://dbc-1234.cloud.databricks.com',
    '    preset: databricks',
    '    credential:',
    '      type: databricks-m2m',
    '      clientId: 6f1c…',
    '      clientSecretFile: /run/secrets/workspace-sp-secret',
    '```',
    '',
  ].join('\n');
}

function row(path: string, n: Node, required: boolean, env: Map<string, string>): string {
  const def = n.default === undefined ? '' : `\`${JSON.stringify(n.default)}\``;
  const e = env.get(path.replaceAll(/\.?<name>|\[\]/g, '')) ?? '';
  return `| \`${path}\` | ${typeOf(n)} | ${cell(def)} | ${required && n.default === undefined ? 'yes' : ''} | ${e === '' ? '' : `\`${e}\``} | ${cell(n.description ?? '')} |`;
}
