/** SCIM provisioning (on the Users page): the bearer tokens identity providers use, a new one shown once, revocation. */
import { h } from './common.js';
import {
  arr,
  call,
  confirmButton,
  enc,
  field,
  fill,
  filled,
  gridForm,
  hashOnly,
  onSubmit,
  say,
  section,
  showOnce,
  str,
  table,
  usageColumns,
  when,
} from './admin-core.js';

interface ScimToken {
  id: string;
  name: string;
  createdAt: number;
  createdBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** POST /scim-tokens: the token is in this answer only. */
interface NewScimToken {
  id: string;
  name: string;
  token: string;
  scimBaseUrl: string;
}

export function scimSection(signal: AbortSignal): HTMLElement {
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'scim-msg' });
  const list = h('div', { id: 'scim-list' });
  const out = h('div', { id: 'scim-once' });
  const name = h('input', {
    type: 'text',
    name: 'name',
    required: true,
    maxlength: '63',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const { form, submit } = gridForm(
    'scim-form',
    { label: 'Create token', id: 'scim-create' },
    field('Name', name, 'The identity provider it is for, e.g. okta').wrap,
  );
  onSubmit(
    form,
    submit,
    msg,
    async () => {
      if (!filled(name, msg, 'Give the token a name.')) return;
      const t = await call<NewScimToken>('/scim-tokens', { name: name.value.trim() });
      say(msg, `SCIM token ${str(t.name)} created.`);
      form.reset();
      showOnce(out, {
        title: `SCIM token for ${str(t.name)}`,
        warning: hashOnly('token', 'the identity provider’s provisioning settings (as the bearer token)'),
        fields: [
          { label: 'SCIM base URL', value: str(t.scimBaseUrl) },
          { label: 'Token', value: str(t.token), secret: true },
        ],
      });
      await load();
    },
    { name },
  );

  const revoke = (t: ScimToken) =>
    confirmButton(
      'Revoke',
      {
        title: `Revoke the SCIM token ${str(t.name)}?`,
        message:
          'The identity provider using it can no longer create, change or deactivate anyone: its next call is refused. This cannot be undone.',
        confirm: 'Revoke token',
      },
      msg,
      async () => {
        await call(`/scim-tokens/${enc(str(t.id))}`, undefined, 'DELETE');
        say(msg, `SCIM token ${str(t.name)} revoked.`);
        await load();
      },
      'btn btn-danger-quiet btn-small revoke-scim-token',
      `SCIM token ${str(t.name)}`,
    );

  const load = () =>
    fill(list, signal, 'SCIM tokens', async () => [
      table(
        'SCIM tokens',
        [
          { label: 'Name', cell: (t: ScimToken) => h('strong', {}, str(t.name)) },
          { label: 'Created', cell: (t: ScimToken) => when(t.createdAt) },
          ...usageColumns<ScimToken>(),
          { label: 'Actions', cell: (t: ScimToken) => (t.revokedAt === null ? revoke(t) : null) },
        ],
        arr<ScimToken>((await call<{ tokens: ScimToken[] }>('/scim-tokens')).tokens),
        'No SCIM tokens yet.',
      ),
    ]);
  void load();

  return section(
    'Provisioning (SCIM)',
    h(
      'p',
      { class: 'hint' },
      'An identity provider (Okta, Entra ID) creates people and groups here, keeps them current and deactivates those who leave, with a token made below. Roles still come from bindings — but a token can put people in groups, so treat it like admin access and revoke it when you change providers.',
    ),
    list,
    h('h3', {}, 'Create a token'),
    form,
    msg,
    out,
  );
}
