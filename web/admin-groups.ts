/** Groups: the list, a new group, one group and its members; and a person's groups on their page. */
import { h } from './common.js';
import {
  arr,
  badge,
  call,
  confirmButton,
  done,
  enc,
  facts,
  fail,
  field,
  fill,
  filled,
  flag,
  gridForm,
  leave,
  loading,
  num,
  onSubmit,
  qs,
  roleBadges,
  say,
  section,
  str,
  table,
  titled,
  when,
} from './admin-core.js';
import type { View } from './admin-router.js';

interface Group {
  id: string;
  name: string;
  description: string;
  members: number;
  roles: string[];
  createdAt: number;
}

interface Member {
  id: string;
  email: string;
  displayName: string;
  disabled: boolean;
}

type Named = { id: string; name: string };
type Person = { id: string; email: string };

const named = (g: Named): Named => ({ id: str(g.id), name: str(g.name) });
const memberPath = (group: Named, person: Person) => `/groups/${enc(group.id)}/members/${enc(person.id)}`;

const rolesHint = () =>
  h(
    'p',
    { class: 'hint' },
    'A group’s roles come from its bindings, on the ',
    h('a', { href: '#/policy' }, 'Policy page'),
    '.',
  );

async function addMember(group: Named, person: Person, msg: HTMLElement): Promise<void> {
  await call(memberPath(group, person), undefined, 'PUT');
  say(msg, `${person.email} is now in ${group.name}; it applies to their next request.`);
}

/** A "Remove" button taking the person out of the group, after a confirmation. */
function removeButton(group: Named, person: Person, msg: HTMLElement, reload: () => Promise<void>): HTMLElement {
  return confirmButton(
    'Remove',
    {
      title: `Remove ${person.email} from ${group.name}?`,
      message: 'They lose the roles bound to the group from their next request.',
      confirm: 'Remove',
    },
    msg,
    async () => {
      await call(memberPath(group, person), undefined, 'DELETE');
      say(msg, `${person.email} is no longer in ${group.name}.`);
      await reload();
    },
    'btn btn-danger-quiet btn-small remove-member',
    `${person.email} from ${group.name}`,
  );
}

// ---- the list ---------------------------------------------------------------------------------

export const groups: View = (root, ctx) => {
  root.append(h('h1', { tabindex: '-1' }, 'Groups'));
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'groups-msg' });
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '256', autocomplete: 'off' });
  const desc = h('input', { type: 'text', name: 'description', maxlength: '512', autocomplete: 'off' });
  const { form, submit } = gridForm(
    'group-form',
    { label: 'Create group', id: 'group-create' },
    field('Name', name, 'What bindings and policies name, e.g. ml-platform').wrap,
    field('Description (optional)', desc).wrap,
  );
  onSubmit(
    form,
    submit,
    msg,
    async () => {
      if (!filled(name, msg, 'Give the group a name.')) return;
      const body: Record<string, unknown> = { name: name.value.trim() };
      if (desc.value.trim() !== '') body['description'] = desc.value.trim();
      const g = await call<Group>('/groups', body);
      say(msg, `Group ${str(g.name)} created.`);
      form.reset();
      await load();
    },
    { name, description: desc },
  );
  const list = h('div', { id: 'group-list' });
  root.append(msg, section('Create a group', form), section('Groups', rolesHint(), list));

  const load = () =>
    fill(list, ctx.signal, 'Groups', async () => [
      table(
        'Groups',
        [
          {
            label: 'Name',
            cell: (g: Group) => [
              h('a', { href: `#/groups/${enc(str(g.id))}`, class: 'group-link' }, str(g.name)),
              g.description ? h('span', { class: 'cell-sub' }, str(g.description)) : null,
            ],
          },
          { label: 'Members', cell: (g: Group) => String(num(g.members) ?? 0) },
          { label: 'Roles', cell: (g: Group) => roleBadges(g.roles) },
          { label: 'Created', cell: (g: Group) => when(g.createdAt) },
        ],
        arr<Group>((await call<{ groups: Group[] }>('/groups')).groups),
        'No groups yet.',
      ),
    ]);
  void load();
};

// ---- one group --------------------------------------------------------------------------------

export const groupDetail: View = (root, ctx) => {
  const title = h('h1', { tabindex: '-1' }, 'Group');
  root.append(h('p', { class: 'crumbs' }, h('a', { href: '#/groups' }, '← All groups')), title);
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'group-msg' });
  const summary = h('div');
  const actions = h('div', { class: 'actions' });
  const members = h('div', { id: 'group-members' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'off', spellcheck: 'false' });
  const add = gridForm(
    'member-form',
    { label: 'Add member', id: 'member-add', secondary: true },
    field('Add a person by email', email).wrap,
  );
  const membersSection = section('Members', members, add.form);
  membersSection.hidden = true;
  root.append(msg, summary, actions, membersSection);
  let group: Named | null = null;

  onSubmit(add.form, add.submit, msg, async () => {
    if (group === null || !filled(email, msg, 'Enter the email address of the person to add.')) return;
    const wanted = email.value.trim().toLowerCase();
    const r = await call<{ users: Member[] }>(`/users${qs({ q: wanted, limit: 50 })}`);
    const person = arr<Member>(r.users).find((u) => str(u.email).toLowerCase() === wanted);
    if (!person) {
      flag(email, msg, `Nobody has the email ${wanted}: invite them on the Users page first.`);
      return;
    }
    await addMember(group, { id: str(person.id), email: str(person.email) }, msg);
    add.form.reset();
    await load();
  });

  async function load(): Promise<void> {
    if (summary.childElementCount === 0) loading(summary);
    let g: Omit<Group, 'members'> & { members: Member[] };
    try {
      g = await call(`/groups/${enc(ctx.match[1] ?? '')}`);
    } catch (err) {
      if (!ctx.signal.aborted) fail(summary, err, 'This group could not be loaded');
      return;
    }
    if (ctx.signal.aborted) return;
    const it = named(g);
    group = it;
    titled(title, it.name || 'Group');
    const people = arr<Member>(g.members);
    done(
      summary,
      facts([
        ['Description', str(g.description) || '—'],
        ['Roles', roleBadges(g.roles)],
        ['Created', when(g.createdAt)],
        ['ID', h('span', { class: 'mono' }, it.id)],
      ]),
      rolesHint(),
    );
    actions.replaceChildren(
      confirmButton(
        'Delete group',
        {
          title: `Delete the group ${it.name}?`,
          message: `Its ${people.length} member(s) lose it, and the roles bound to it, at their next request. Bindings naming it stay.`,
          confirm: 'Delete group',
        },
        msg,
        async () => {
          await call(`/groups/${enc(it.id)}`, undefined, 'DELETE');
          leave('#/groups', `Group ${it.name} deleted.`);
        },
      ),
    );
    membersSection.hidden = false;
    members.replaceChildren(
      table(
        `Members of ${it.name}`,
        [
          { label: 'Email', cell: (u: Member) => h('a', { href: `#/users/${enc(str(u.id))}` }, str(u.email)) },
          { label: 'Name', cell: (u: Member) => str(u.displayName) || '—' },
          { label: 'Status', cell: (u: Member) => (u.disabled ? badge('Disabled', 'danger') : badge('Active', 'ok')) },
          {
            label: 'Actions',
            cell: (u: Member) => removeButton(it, { id: str(u.id), email: str(u.email) }, msg, load),
          },
        ],
        people,
        'No members yet.',
      ),
    );
  }
  void load();
};

// ---- a person's groups (on their page) ---------------------------------------------------------

/** The groups a person is in, each with "Remove", and a choice of the others to add them to. */
export function personGroups(
  box: HTMLElement,
  signal: AbortSignal,
  person: Person & { groups: unknown },
  msg: HTMLElement,
  reload: () => Promise<void>,
): Promise<void> {
  return fill(box, signal, 'Groups', async () => {
    const all = arr<Group>((await call<{ groups: Group[] }>('/groups')).groups);
    const theirs = new Set(arr<string>(person.groups));
    const others = all.filter((g) => !theirs.has(str(g.name)));
    const pick = h('select', { name: 'group' }, ...others.map((g) => h('option', { value: str(g.id) }, str(g.name))));
    const add = gridForm(
      'user-group-form',
      { label: 'Add to group', id: 'user-group-add', secondary: true },
      field('Add to a group', pick).wrap,
    );
    onSubmit(add.form, add.submit, msg, async () => {
      const g = others.find((x) => str(x.id) === pick.value);
      if (!g) return;
      await addMember(named(g), person, msg);
      await reload();
    });
    return [
      table(
        `Groups of ${person.email}`,
        [
          { label: 'Group', cell: (g: Group) => h('a', { href: `#/groups/${enc(str(g.id))}` }, str(g.name)) },
          { label: 'Roles', cell: (g: Group) => roleBadges(g.roles) },
          { label: 'Actions', cell: (g: Group) => removeButton(named(g), person, msg, reload) },
        ],
        all.filter((g) => theirs.has(str(g.name))),
        'Not in any group.',
      ),
      others.length > 0
        ? add.form
        : all.length === 0
          ? h(
              'p',
              { class: 'hint' },
              'No groups yet: create one on the ',
              h('a', { href: '#/groups' }, 'Groups page'),
              '.',
            )
          : h('p', { class: 'hint' }, 'They are in every group.'),
    ];
  });
}
