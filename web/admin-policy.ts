/** Roles, bindings and the policy tester: "may alice deploy fraud-model now?". */

import {
  arr,
  badge,
  busy,
  button,
  call,
  confirmAction,
  done,
  enc,
  errorBox,
  fail,
  field,
  Handled,
  loading,
  num,
  say,
  section,
  str,
  table,
  uid,
} from './admin-core.js';
import type { View } from './admin-router.js';
import { h } from './common.js';

interface Role {
  name: string;
  description?: string;
  shipped: boolean;
  grants: { actions: string[]; resources: string[] }[];
}

interface Binding {
  id?: string;
  group?: string;
  user?: string;
  roles: string[];
  source?: 'config' | 'store';
}

interface TestResult {
  decision: 'allow' | 'deny' | 'step_up';
  reasons?: string[];
  action?: string;
  resource?: string;
  roles?: string[];
  stepUp?: { required: boolean; maxAgeSeconds: number };
  refusedBeforePolicy?: { error_code: string; message: string };
}

/**
 * The action catalogue, for suggestions only (the API validates the action): read from the API's
 * own description — the policy tester's `action` enum — rather than kept here as a copy.
 */
async function actionNames(): Promise<string[]> {
  const doc = await call<{
    paths?: Record<
      string,
      {
        post?: {
          requestBody?: { content?: Record<string, { schema?: { properties?: { action?: { enum?: unknown } } } }> };
        };
      }
    >;
  }>('/openapi.json');
  return arr<string>(
    doc.paths?.['/policy/test']?.post?.requestBody?.content?.['application/json']?.schema?.properties?.action?.enum,
  );
}

const DECISIONS: Record<string, { text: string; kind: string }> = {
  allow: { text: 'Allowed', kind: 'ok' },
  deny: { text: 'Denied', kind: 'danger' },
  step_up: { text: 'Allowed after a fresh key tap (step-up)', kind: 'warn' },
};

function duration(s: number): string {
  if (s % 3600 === 0 && s >= 3600) return `${s / 3600} h`;
  if (s % 60 === 0 && s >= 60) return `${s / 60} min`;
  return `${s} s`;
}

export const policy: View = (root, ctx) => {
  root.append(h('h1', { tabindex: '-1' }, 'Policy'));

  // ---- the tester ----------------------------------------------------------------------------
  const principal = h('input', {
    type: 'text',
    name: 'principal',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'user:alice@example.com',
    id: 'pt-principal',
  });
  const listId = uid('actions');
  const datalist = h('datalist', { id: listId });
  actionNames().then(
    (names) => datalist.replaceChildren(...names.map((a) => h('option', { value: a }))),
    () => undefined, // suggestions only: the field still takes any action
  );
  const action = h('input', {
    type: 'text',
    name: 'action',
    list: listId,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'serving:manage',
    id: 'pt-action',
  });
  const resource = h('input', {
    type: 'text',
    name: 'resource',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'Endpoint::fraud-model',
    id: 'pt-resource',
  });
  const method = h(
    'select',
    { name: 'method', id: 'pt-method' },
    ...['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].map((m) => h('option', { value: m }, m)),
  );
  const path = h('input', {
    type: 'text',
    name: 'path',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: '/api/2.0/serving-endpoints/fraud-model/config',
    id: 'pt-path',
  });
  const age = h('input', { type: 'number', name: 'authAgeSeconds', min: '0', step: '1', id: 'pt-age' });
  age.value = '0';
  const uv = h('input', { type: 'checkbox', name: 'uv', id: 'pt-uv', checked: true });

  const byAction = h('input', { type: 'radio', name: 'mode', value: 'action', id: 'pt-mode-action', checked: true });
  const byPath = h('input', { type: 'radio', name: 'mode', value: 'path', id: 'pt-mode-path' });
  const actionFields = h(
    'div',
    { class: 'form-grid inner' },
    field('Action', action).wrap,
    field('Resource', resource, 'Type::name — Endpoint, Model, Job, Workspace, Api or Keygate').wrap,
  );
  const pathFields = h(
    'div',
    { class: 'form-grid inner', hidden: true },
    field('Method', method).wrap,
    field('Path', path, 'As a client would send it; the preset classifies it').wrap,
  );
  const syncMode = () => {
    actionFields.hidden = !byAction.checked;
    pathFields.hidden = !byPath.checked;
  };
  byAction.addEventListener('change', syncMode);
  byPath.addEventListener('change', syncMode);

  const check = h('button', { type: 'submit', class: 'btn btn-primary', id: 'pt-submit' }, 'Check');
  const result = h('div', { id: 'policy-result', role: 'status', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'stack tester', id: 'policy-form', novalidate: true },
    field('Who', principal, 'user:EMAIL, sp:ID or agent:ID (a plain email means a user)').wrap,
    h(
      'fieldset',
      { class: 'choice' },
      h('legend', {}, 'Describe the request by'),
      h('label', { class: 'radio' }, byAction, ' action and resource'),
      h('label', { class: 'radio' }, byPath, ' method and path'),
    ),
    actionFields,
    pathFields,
    h(
      'div',
      { class: 'form-grid inner' },
      field('Their login is this old (seconds)', age, '0 means they just tapped their key').wrap,
      h(
        'div',
        { class: 'field checkbox-field' },
        h('label', { class: 'radio' }, uv, ' Login was user-verified (PIN or biometric)'),
      ),
    ),
    datalist,
    h('div', { class: 'form-actions' }, check),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (check.dataset['busy'] === 'true') return;
    let who = principal.value.trim();
    if (who !== '' && !/^(user|sp|agent):/.test(who)) who = `user:${who}`;
    if (who === '') {
      principal.setAttribute('aria-invalid', 'true');
      result.replaceChildren(h('p', { class: 'error' }, 'Say who is asking: user:EMAIL, sp:ID or agent:ID.'));
      principal.focus();
      return;
    }
    principal.removeAttribute('aria-invalid');
    const body: Record<string, unknown> = {
      principal: who,
      authAgeSeconds: Math.max(0, Math.floor(Number(age.value) || 0)),
      uv: uv.checked,
    };
    if (byAction.checked) {
      if (action.value.trim() !== '') body['action'] = action.value.trim();
      if (resource.value.trim() !== '') body['resource'] = resource.value.trim();
    } else {
      body['method'] = method.value;
      if (path.value.trim() !== '') body['path'] = path.value.trim();
    }
    void busy(check, async () => {
      result.replaceChildren(h('p', { class: 'muted' }, 'Checking…'));
      try {
        const r = await call<TestResult>('/policy/test', body);
        if (ctx.signal.aborted) return;
        result.replaceChildren(renderResult(who, r));
      } catch (err) {
        if (err instanceof Handled) result.replaceChildren();
        else result.replaceChildren(errorBox(err));
      }
    });
  });
  root.append(
    section(
      'Policy tester',
      h('p', { class: 'hint' }, 'Evaluates a described request against the live policies — nothing is sent upstream.'),
      form,
      result,
    ),
  );

  // ---- roles and bindings ---------------------------------------------------------------------
  const rolesBox = h('div', { id: 'roles' });
  const bindingsBox = h('div', { id: 'bindings' });
  const bindMsg = h('div', { role: 'status', 'aria-live': 'polite' });
  const kind = h(
    'select',
    { name: 'kind' },
    h('option', { value: 'user' }, 'A person (email)'),
    h('option', { value: 'group' }, 'A group'),
  );
  const subject = h('input', { type: 'text', name: 'subject', autocomplete: 'off', spellcheck: 'false' });
  const role = h('select', { name: 'role' });
  const bindBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'bind-submit' }, 'Add binding');
  const bindForm = h(
    'form',
    { class: 'form-grid', id: 'bind-form', novalidate: true },
    field('Who', kind).wrap,
    field('Email or group name', subject).wrap,
    field('Role', role).wrap,
    h('div', { class: 'form-actions' }, bindBtn),
  );
  bindForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (bindBtn.dataset['busy'] === 'true') return;
    const who = subject.value.trim();
    if (who === '') {
      subject.setAttribute('aria-invalid', 'true');
      say(bindMsg, 'Enter an email address or a group name.', 'error');
      subject.focus();
      return;
    }
    subject.removeAttribute('aria-invalid');
    void busy(bindBtn, async () => {
      try {
        await call('/bindings', { [kind.value === 'group' ? 'group' : 'user']: who, role: role.value });
        say(bindMsg, `${who} now holds ${role.value}; it applies to their next request.`);
        bindForm.reset();
        await load();
      } catch (err) {
        if (!(err instanceof Handled)) say(bindMsg, err instanceof Error ? err.message : String(err), 'error');
      }
    });
  });
  root.append(section('Roles', rolesBox), section('Bindings', bindingsBox, bindForm, bindMsg));

  const remove = async (b: Binding, btn: HTMLButtonElement) => {
    const who = str(b.group ?? b.user);
    if (
      !(await confirmAction(
        'Remove binding',
        `${who} loses ${arr<string>(b.roles).join(', ')} from their next request.`,
        'Remove',
      ))
    )
      return;
    await busy(btn, async () => {
      try {
        await call(`/bindings/${enc(str(b.id))}`, undefined, 'DELETE');
        say(bindMsg, `Binding removed: ${who}.`);
        await load();
      } catch (err) {
        if (!(err instanceof Handled)) say(bindMsg, err instanceof Error ? err.message : String(err), 'error');
      }
    });
  };

  const load = async (): Promise<void> => {
    loading(rolesBox);
    loading(bindingsBox);
    try {
      const r = await call<{ roles: Role[]; bindings: Binding[]; stepUpMaxAgeSeconds: number }>('/roles');
      if (ctx.signal.aborted) return;
      const maxAge = num(r.stepUpMaxAgeSeconds);
      done(
        rolesBox,
        maxAge === null
          ? null
          : h(
              'p',
              { class: 'hint' },
              `Sensitive actions need a user-verified login at most ${duration(maxAge)} old (step-up).`,
            ),
        ...rolesList(arr<Role>(r.roles)),
      );
      role.replaceChildren(...arr<Role>(r.roles).map((x) => h('option', { value: str(x.name) }, str(x.name))));
      done(
        bindingsBox,
        table(
          'Role bindings',
          [
            {
              label: 'Who',
              cell: (b: Binding) =>
                b.group !== undefined
                  ? [badge('group', ''), ` ${str(b.group)}`]
                  : [badge('user', ''), ` ${str(b.user)}`],
            },
            {
              label: 'Roles',
              cell: (b: Binding) =>
                h('span', { class: 'badges' }, ...arr<string>(b.roles).map((x) => badge(str(x), 'role'))),
            },
            {
              label: 'From',
              cell: (b: Binding) => (b.source === 'store' ? 'this console' : 'keygate.yaml'),
            },
            {
              label: 'Actions',
              cell: (b: Binding) =>
                b.source === 'store' && b.id !== undefined
                  ? button('Remove', (btn) => remove(b, btn), 'btn btn-danger-quiet btn-small', str(b.group ?? b.user))
                  : null,
            },
          ],
          arr<Binding>(r.bindings),
          'No bindings: roles come only from invitations.',
        ),
      );
    } catch (err) {
      if (ctx.signal.aborted) return;
      fail(rolesBox, err, 'Roles could not be loaded');
      done(bindingsBox, h('p', { class: 'empty' }, 'Bindings are listed with the roles.'));
    }
  };
  void load();
};

function rolesList(roles: Role[]): HTMLElement[] {
  if (roles.length === 0) return [h('p', { class: 'empty' }, 'No roles.')];
  return [
    h(
      'ul',
      { class: 'role-cards' },
      ...roles.map((role) =>
        h(
          'li',
          { class: 'role-card' },
          h('h3', {}, str(role.name), ' ', role.shipped ? badge('shipped', '') : badge('custom', 'role')),
          role.description ? h('p', { class: 'hint' }, str(role.description)) : null,
          h(
            'ul',
            { class: 'grants' },
            ...arr<Role['grants'][number]>(role.grants).map((g) =>
              h(
                'li',
                {},
                h(
                  'span',
                  { class: 'mono' },
                  arr<string>(g.actions)
                    .map((x) => str(x))
                    .join(', '),
                ),
                ' on ',
                h(
                  'span',
                  { class: 'mono' },
                  arr<string>(g.resources)
                    .map((x) => str(x))
                    .join(', '),
                ),
              ),
            ),
          ),
        ),
      ),
    ),
  ];
}

function renderResult(who: string, r: TestResult): HTMLElement {
  const d = DECISIONS[str(r.decision)] ?? { text: str(r.decision), kind: '' };
  const out = h(
    'div',
    { class: `decision-box decision-${d.kind}` },
    h('p', { class: 'decision' }, h('span', { class: `badge badge-${d.kind} decision-badge` }, d.text)),
  );
  if (r.refusedBeforePolicy) {
    out.append(
      h(
        'p',
        {},
        `Refused before policy (${str(r.refusedBeforePolicy.error_code)}): ${str(r.refusedBeforePolicy.message)}`,
      ),
    );
    return out;
  }
  const rows: [string, Node | string][] = [
    ['Who', who],
    ['Action', h('span', { class: 'mono' }, str(r.action))],
    ['Resource', h('span', { class: 'mono' }, str(r.resource))],
    [
      'Roles',
      arr<string>(r.roles).length === 0
        ? 'none'
        : h('span', { class: 'badges' }, ...arr<string>(r.roles).map((x) => badge(str(x), 'role'))),
    ],
    [
      'Because of',
      arr<string>(r.reasons).length === 0
        ? 'no policy allowed it (default deny)'
        : h('ul', { class: 'reasons' }, ...arr<string>(r.reasons).map((x) => h('li', { class: 'mono' }, str(x)))),
    ],
  ];
  const maxAge = num(r.stepUp?.maxAgeSeconds);
  if (r.stepUp?.required) rows.push(['Step-up', `a user-verified login within ${duration(maxAge ?? 0)} is needed`]);
  out.append(h('dl', { class: 'facts' }, ...rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));
  return out;
}
