/** Machines: service principals, their secrets (shown once) and public keys, and federation trusts. */
import { h } from './common.js';
import {
  arr,
  badge,
  busy,
  button,
  call,
  confirmAction,
  done,
  enc,
  fail,
  field,
  filled,
  gridForm,
  Handled,
  hashOnly,
  jwksIn,
  loading,
  num,
  onSubmit,
  relative,
  roleBadges,
  rolePicker,
  say,
  section,
  showOnce,
  str,
  table,
  when,
} from './admin-core.js';
import type { View } from './admin-router.js';
import { trustsSection } from './admin-trusts.js';

interface Secret {
  id: string;
  createdAt: number;
  expiresAt: number | null;
}

interface ServicePrincipal {
  id: string;
  name: string;
  description: string | null;
  roles: string[];
  auth: string;
  secrets: Secret[];
  createdAt: number;
  disabled: boolean;
}

const DAY = 86_400_000;
const WARN_DAYS = 14;

const AUTH_LABELS: Record<string, string> = {
  client_secret_basic: 'Client secret',
  private_key_jwt: 'Private key JWT',
  federation: 'Federation only',
};
const authLabel = (sp: ServicePrincipal) => AUTH_LABELS[str(sp.auth)] ?? str(sp.auth);

/** Refill a select with the live service principals, keeping the choice when it is still there. */
function fillSps(select: HTMLSelectElement, sps: ServicePrincipal[]): void {
  const was = select.value;
  select.replaceChildren(
    ...sps.filter((sp) => !sp.disabled).map((sp) => h('option', { value: str(sp.id) }, str(sp.name))),
  );
  if ([...select.options].some((o) => o.value === was)) select.value = was;
}

function secretCell(sp: ServicePrincipal, s: Secret, onRevoke: (b: HTMLButtonElement) => void): HTMLElement {
  const now = Date.now();
  const exp = num(s.expiresAt);
  const age = num(s.createdAt);
  let expiry: Node;
  if (exp === null) expiry = h('span', {}, 'no expiry');
  else if (exp <= now) expiry = badge('Expired', 'danger');
  else if (exp - now <= WARN_DAYS * DAY)
    expiry = h(
      'span',
      { class: 'badge badge-warn', title: new Date(exp).toLocaleString() },
      `Expires ${relative(exp, now)}`,
    );
  else expiry = h('span', {}, 'expires ', when(exp));
  return h(
    'li',
    { class: 'secret', 'data-secret-id': str(s.id) },
    h('span', { class: 'mono' }, str(s.id)),
    h('span', { class: 'secret-meta' }, age === null ? '' : `created ${relative(age, now)} · `, expiry),
    button('Revoke', onRevoke, 'btn btn-danger-quiet btn-small', `secret ${str(s.id)} of ${str(sp.name)}`),
  );
}

export const servicePrincipals: View = (root, ctx) => {
  root.append(h('h1', { tabindex: '-1' }, 'Service principals'));
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'sp-msg' });
  root.append(msg);

  // Create
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '63', autocomplete: 'off' });
  const roles = rolePicker();
  const desc = h('input', { type: 'text', name: 'description', maxlength: '512', autocomplete: 'off' });
  const { form, submit } = gridForm(
    'sp-form',
    { label: 'Create', id: 'sp-create' },
    field('Name', name, 'For example ci-deployer').wrap,
    field('Description (optional)', desc).wrap,
    roles.wrap,
  );
  const secretOut = h('div', { id: 'sp-secret' });
  const createSection = section('Create a service principal', form, secretOut);
  root.append(createSection);

  const showSecret = (spName: string, clientId: string, secret: string, expiresAt: unknown) => {
    const exp = num(expiresAt);
    showOnce(secretOut, {
      title: `Client secret for ${spName}`,
      warning: hashOnly('secret', 'your secret manager or CI settings'),
      fields: [
        { label: 'Client ID', value: clientId },
        { label: 'Client secret', value: secret, secret: true },
      ],
      extra: [exp === null ? null : h('p', { class: 'hint' }, `It expires ${new Date(exp).toLocaleString()}.`)],
    });
  };

  onSubmit(
    form,
    submit,
    msg,
    async () => {
      if (!filled(name, msg, 'Give the service principal a name.')) return;
      const body: Record<string, unknown> = { name: name.value.trim(), roles: roles.value() };
      if (desc.value.trim() !== '') body['description'] = desc.value.trim();
      const r = await call<ServicePrincipal & { clientSecret?: string; secretExpiresAt?: number }>(
        '/service-principals',
        body,
      );
      say(msg, `Service principal ${str(r.name)} created.`);
      form.reset();
      if (typeof r.clientSecret === 'string') showSecret(str(r.name), str(r.id), r.clientSecret, r.secretExpiresAt);
      void load();
    },
    { name, description: desc },
  );

  // List
  const list = h('div', { id: 'sp-list' });
  const listSection = section('Service principals', list);
  root.append(listSection);

  // Public keys for private_key_jwt
  const keysMsg = h('div', { role: 'status', 'aria-live': 'polite', id: 'keys-msg' });
  const keySp = h('select', { name: 'servicePrincipal' });
  const keyText = h('textarea', { name: 'keys', rows: '6', spellcheck: 'false', autocomplete: 'off' });
  const keysForm = gridForm(
    'keys-form',
    { label: 'Register keys', id: 'keys-submit' },
    field('Service principal', keySp).wrap,
    field(
      'Public keys (JSON)',
      keyText,
      'One JWK or a JWKS, public members only. They replace any keys registered before; the principal then authenticates by signing its token requests (private_key_jwt), not with a secret.',
    ).wrap,
  );
  onSubmit(
    keysForm.form,
    keysForm.submit,
    keysMsg,
    async () => {
      if (!filled(keySp, keysMsg, 'There is no live service principal to register keys for.')) return;
      const jwks = jwksIn(keyText, keysMsg);
      if (jwks === null) return;
      const sp = await call<ServicePrincipal>(`/service-principals/${enc(keySp.value)}/keys`, jwks, 'PUT');
      say(keysMsg, `Keys registered for ${str(sp.name)}: it authenticates with ${authLabel(sp)} now.`);
      keyText.value = '';
      await load();
    },
    { keys: keyText },
  );
  const trustSp = h('select', { name: 'servicePrincipal' });
  const trusts = trustsSection(ctx, trustSp);
  root.append(section('Public keys (private_key_jwt)', keysForm.form, keysMsg), trusts.el);

  async function load(): Promise<void> {
    if (list.childElementCount === 0) loading(list);
    try {
      const r = await call<{ servicePrincipals: ServicePrincipal[] }>('/service-principals');
      if (ctx.signal.aborted) return;
      const sps = arr<ServicePrincipal>(r.servicePrincipals);
      done(list, spTable(sps));
      for (const s of [keySp, trustSp]) fillSps(s, sps);
      await trusts.load(new Map(sps.map((sp) => [str(sp.id), str(sp.name)])));
    } catch (err) {
      if (ctx.signal.aborted) return;
      fail(list, err, 'Service principals could not be loaded');
      await trusts.load(new Map());
    }
  }

  const afterChange = async (b: HTMLButtonElement, text: string) => {
    say(msg, text);
    await load();
    if (!b.isConnected) listSection.querySelector<HTMLElement>('h2')?.focus();
  };

  function spTable(sps: ServicePrincipal[]): HTMLElement {
    return table(
      'Service principals',
      [
        {
          label: 'Name',
          cell: (sp: ServicePrincipal) => [
            h('strong', {}, str(sp.name)),
            sp.description ? h('span', { class: 'cell-sub' }, str(sp.description)) : null,
            sp.disabled ? badge('Disabled', 'danger') : null,
          ],
        },
        { label: 'Client ID', cell: (sp: ServicePrincipal) => h('span', { class: 'mono' }, str(sp.id)) },
        { label: 'Roles', cell: (sp: ServicePrincipal) => roleBadges(sp.roles) },
        { label: 'Auth', cell: (sp: ServicePrincipal) => authLabel(sp) },
        {
          label: 'Secrets',
          cls: 'col-secrets',
          cell: (sp: ServicePrincipal) => {
            const secrets = arr<Secret>(sp.secrets);
            if (secrets.length === 0) return h('span', { class: 'muted' }, 'none');
            return h(
              'ul',
              { class: 'secrets' },
              ...secrets.map((s) =>
                secretCell(sp, s, async (b) => {
                  if (
                    !(await confirmAction(
                      `Revoke secret ${str(s.id)}?`,
                      `Clients of ${str(sp.name)} using this secret stop getting tokens at once.`,
                      'Revoke secret',
                    ))
                  )
                    return;
                  await busy(b, async () => {
                    try {
                      await call(
                        `/service-principals/${enc(str(sp.id))}/secrets/${enc(str(s.id))}`,
                        undefined,
                        'DELETE',
                      );
                      await afterChange(b, `Secret ${str(s.id)} revoked.`);
                    } catch (err) {
                      if (!(err instanceof Handled)) say(msg, err instanceof Error ? err.message : 'Failed.', 'error');
                    }
                  });
                }),
              ),
            );
          },
        },
        {
          label: 'Actions',
          cell: (sp: ServicePrincipal) =>
            sp.disabled
              ? null
              : [
                  str(sp.auth) === 'private_key_jwt'
                    ? null
                    : button(
                        'New secret',
                        async (b) => {
                          if (
                            !(await confirmAction(
                              `Create a new secret for ${str(sp.name)}?`,
                              'The new secret is shown once. At most two secrets are live: when two already are, the older one is revoked now.',
                              'Create secret',
                              false,
                            ))
                          )
                            return;
                          await busy(b, async () => {
                            try {
                              const r = await call<{ clientId: string; clientSecret: string; secretExpiresAt: number }>(
                                `/service-principals/${enc(str(sp.id))}/secrets`,
                                {},
                              );
                              showSecret(str(sp.name), str(r.clientId), str(r.clientSecret), r.secretExpiresAt);
                              say(msg, `New secret created for ${str(sp.name)}.`);
                              void load();
                            } catch (err) {
                              if (!(err instanceof Handled))
                                say(msg, err instanceof Error ? err.message : 'Failed.', 'error');
                            }
                          });
                        },
                        'btn btn-secondary btn-small rotate',
                        `for ${str(sp.name)}`,
                      ),
                  ' ',
                  button(
                    'Disable',
                    async (b) => {
                      if (
                        !(await confirmAction(
                          `Disable ${str(sp.name)}?`,
                          'It gets no new tokens, and the tokens it already has are refused at once. This cannot be undone here.',
                          'Disable',
                        ))
                      )
                        return;
                      await busy(b, async () => {
                        try {
                          await call(`/service-principals/${enc(str(sp.id))}/disable`, {});
                          await afterChange(b, `${str(sp.name)} disabled.`);
                        } catch (err) {
                          if (!(err instanceof Handled))
                            say(msg, err instanceof Error ? err.message : 'Failed.', 'error');
                        }
                      });
                    },
                    'btn btn-danger-quiet btn-small disable-sp',
                    str(sp.name),
                  ),
                ],
        },
      ],
      sps,
      'No service principals yet.',
    );
  }
  void load();
};
