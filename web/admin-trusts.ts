/** Workload federation trusts (on the service principals page): the list, a new trust, removal. */
import { h } from './common.js';
import {
  arr,
  call,
  confirmButton,
  enc,
  field,
  fill,
  gridForm,
  jwksIn,
  loading,
  onSubmit,
  say,
  section,
  sourceLabel,
  str,
  table,
} from './admin-core.js';
import type { ViewContext } from './admin-router.js';

interface Trust {
  name: string;
  issuer: string;
  audience: string;
  subject: string;
  servicePrincipal: string;
  keys?: string;
  source?: 'config' | 'store';
}

const text = (name: string, placeholder = '') =>
  h('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false', placeholder: placeholder || undefined });

/**
 * The trusts section. The page fills `spPick` with the live service principals, and calls `load`
 * with every principal's name by id (a stored trust names its principal by id).
 */
export function trustsSection(
  ctx: ViewContext,
  spPick: HTMLSelectElement,
): { el: HTMLElement; load: (names: Map<string, string>) => Promise<void> } {
  let spNames = new Map<string, string>();
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'trust-msg' });
  const list = h('div', { id: 'trusts' });
  const f = {
    name: text('name', 'github-ml'),
    issuer: text('issuer', 'https://token.actions.githubusercontent.com'),
    jwksUrl: text('jwksUrl', 'https://token.actions.githubusercontent.com/.well-known/jwks'),
    jwks: h('textarea', { name: 'jwks', rows: '5', spellcheck: 'false', autocomplete: 'off' }),
    audience: text('audience'),
    subject: text('subject', 'repo:acme/ml:ref:refs/heads/*'),
    servicePrincipal: spPick,
  };
  const { form, submit } = gridForm(
    'trust-form',
    { label: 'Add trust', id: 'trust-create' },
    field('Name', f.name).wrap,
    field('Issuer', f.issuer, 'The iss of the platform’s tokens').wrap,
    field('Audience', f.audience, 'The aud the tokens must carry').wrap,
    field('Subject', f.subject, 'The sub required; * matches any run of characters').wrap,
    field('Service principal', f.servicePrincipal, 'Whose tokens the workload gets').wrap,
    field('Keys URL (JWKS)', f.jwksUrl, 'Either this, or the keys below').wrap,
    field('…or the keys inline (JSON)', f.jwks, 'One JWK or a JWKS, public members only').wrap,
  );
  onSubmit(
    form,
    submit,
    msg,
    async () => {
      const body: Record<string, unknown> = {};
      for (const k of ['name', 'issuer', 'audience', 'subject', 'servicePrincipal'] as const)
        body[k] = f[k].value.trim();
      if (f.jwksUrl.value.trim() !== '') body['jwksUrl'] = f.jwksUrl.value.trim();
      if (f.jwks.value.trim() !== '') {
        const jwks = jwksIn(f.jwks, msg);
        if (jwks === null) return;
        body['jwks'] = jwks;
      }
      const t = await call<Trust>('/federation-trusts', body);
      say(msg, `Trust ${str(t.name)} added: it applies at once.`);
      form.reset();
      await load(spNames);
    },
    f,
  );

  const remove = (t: Trust) =>
    confirmButton(
      'Remove',
      {
        title: `Remove the trust ${str(t.name)}?`,
        message: 'Workloads get no new tokens through it; tokens already issued under it run out (15 minutes at most).',
        confirm: 'Remove trust',
      },
      msg,
      async () => {
        await call(`/federation-trusts/${enc(str(t.name))}`, undefined, 'DELETE');
        say(msg, `Trust ${str(t.name)} removed.`);
        await load(spNames);
      },
      'btn btn-danger-quiet btn-small remove-trust',
      str(t.name),
    );

  const load = (names: Map<string, string>): Promise<void> => {
    spNames = names;
    return fill(list, ctx.signal, 'Federation trusts', async () => [
      table(
        'Federation trusts',
        [
          { label: 'Name', cell: (t: Trust) => str(t.name) },
          { label: 'Issuer', cell: (t: Trust) => h('span', { class: 'mono' }, str(t.issuer)) },
          { label: 'Audience', cell: (t: Trust) => h('span', { class: 'mono' }, str(t.audience)) },
          { label: 'Subject', cell: (t: Trust) => h('span', { class: 'mono' }, str(t.subject)) },
          {
            label: 'Service principal',
            cell: (t: Trust) => spNames.get(str(t.servicePrincipal)) ?? str(t.servicePrincipal),
          },
          { label: 'Keys', cell: (t: Trust) => h('span', { class: 'mono' }, str(t.keys) || '—') },
          { label: 'From', cell: (t: Trust) => sourceLabel(t.source) },
          { label: 'Actions', cell: (t: Trust) => (t.source === 'store' ? remove(t) : null) },
        ],
        arr<Trust>((await call<{ trusts: Trust[] }>('/federation-trusts')).trusts),
        'No federation trusts yet.',
      ),
    ]);
  };
  loading(list);
  const el = section(
    'Federation trusts',
    h(
      'p',
      { class: 'hint' },
      "Workloads whose platform identity tokens match a trust get the service principal's tokens without any secret. Trusts from keygate.yaml are changed there.",
    ),
    list,
    h('h3', {}, 'Add a trust'),
    form,
    msg,
  );
  return { el, load };
}
