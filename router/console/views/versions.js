// Versions and aliases, shown when the router's API has them (its OpenAPI document lists
// /functions/{name}/versions): publish $LATEST, list versions, put and delete aliases.

import { api, segment } from '../api.js';
import { announce, button, confirmDialog, field, h, number, table, when } from '../dom.js';
import { clearErrors, formError, showError } from '../form.js';

export function available(caps) {
  return caps.has('/functions/{name}/versions') && caps.has('/functions/{name}/aliases');
}

export function render(name) {
  const base = `functions/${segment(name)}`;
  const versionsBox = h('div', {});
  const aliasesBox = h('div', {});
  const description = h('input', { type: 'text', autocomplete: 'off' });
  const publish = h('form', { class: 'card', novalidate: true, method: 'post' },
    h('h3', {}, 'Publish $LATEST'),
    field('Version description', description), formError(),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Publish version')));
  publish.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(publish);
    try {
      const version = await api.post(`${base}/versions`, description.value ? { description: description.value } : {});
      announce(`Published version ${version.version}`);
      load();
    } catch (failure) {
      showError(publish, failure);
    }
  });

  const aliasName = h('input', { type: 'text', autocomplete: 'off' });
  const target = h('select', {});
  const extra = h('select', {});
  const weight = h('input', { type: 'text', inputmode: 'decimal', placeholder: '0.1' });
  const aliasDescription = h('input', { type: 'text', autocomplete: 'off' });
  const aliasForm = h('form', { class: 'card', novalidate: true, method: 'post' },
    h('h3', {}, 'Put an alias'),
    h('div', { dataset: { for: 'alias' } }, field('Alias name', aliasName), h('p', { class: 'field-error', role: 'alert' })),
    h('div', { dataset: { for: 'function_version' } }, field('Version', target), h('p', { class: 'field-error', role: 'alert' })),
    h('div', { dataset: { for: 'routing' } }, field('Also send a share to version', extra),
      field('Share (0-1)', weight, 'e.g. 0.1 sends 10% of invocations to that version'), h('p', { class: 'field-error', role: 'alert' })),
    field('Alias description', aliasDescription), formError(),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save alias')));
  aliasForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(aliasForm);
    const body = { function_version: target.value, description: aliasDescription.value };
    if (extra.value) body.routing = { [extra.value]: Number(weight.value || 0) };
    try {
      await api.put(`${base}/aliases/${segment(aliasName.value.trim())}`, body);
      announce(`Saved alias ${aliasName.value}`);
      load();
    } catch (failure) {
      showError(aliasForm, failure);
    }
  });

  async function load() {
    const [{ versions }, { aliases }] = await Promise.all([api.get(`${base}/versions`), api.get(`${base}/aliases`)]);
    const numbers = versions.map((v) => String(v.version));
    target.replaceChildren(...['$LATEST', ...numbers].map((v) => h('option', { value: v }, v)));
    extra.replaceChildren(h('option', { value: '' }, '(none)'), ...numbers.map((v) => h('option', { value: v }, v)));
    versionsBox.replaceChildren(h('h3', {}, 'Versions'), versions.length
      ? table('Published versions', ['Version', 'Description', 'Code SHA-256', 'Published', 'From revision', ''], versions.map((v) => h('tr', {},
        h('th', { scope: 'row' }, String(v.version)), h('td', {}, v.description || ''), h('td', {}, h('code', {}, v.code_sha256 || '—')),
        h('td', {}, typeof v.published_at === 'number' ? when(v.published_at) : String(v.published_at ?? '—')),
        h('td', { class: 'num' }, number(v.revision)),
        h('td', {}, button('Delete', () => removeVersion(v.version), { class: 'quiet danger', 'aria-label': `Delete version ${v.version}` })))))
      : h('p', { class: 'empty' }, 'No published versions: $LATEST is the only one.'));
    aliasesBox.replaceChildren(h('h3', {}, 'Aliases'), aliases.length
      ? table('Aliases', ['Alias', 'Version', 'Routing', 'Description', ''], aliases.map((a) => h('tr', {},
        h('th', { scope: 'row' }, a.name), h('td', {}, a.function_version),
        h('td', {}, Object.entries(a.routing || {}).map(([v, w]) => `${number(w * 100, 1)}% to ${v}`).join(', ') || '—'),
        h('td', {}, a.description || ''),
        h('td', {}, button('Delete', () => removeAlias(a.name), { class: 'quiet danger', 'aria-label': `Delete alias ${a.name}` })))))
      : h('p', { class: 'empty' }, 'No aliases.'));
  }

  async function removeVersion(version) {
    if (!(await confirmDialog(`Delete version ${version}?`, 'A version an alias or a trigger uses cannot be deleted.', 'Delete version'))) return;
    try { await api.del(`${base}/versions/${segment(String(version))}`); announce(`Deleted version ${version}`); load(); } catch (e) { announce(e.message, 'bad'); }
  }

  async function removeAlias(alias) {
    if (!(await confirmDialog(`Delete alias ${alias}?`, 'An alias a trigger uses cannot be deleted.', 'Delete alias'))) return;
    try { await api.del(`${base}/aliases/${segment(alias)}`); announce(`Deleted alias ${alias}`); load(); } catch (e) { announce(e.message, 'bad'); }
  }

  load().catch((failure) => versionsBox.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, failure.message)));
  return { el: h('div', {}, versionsBox, publish, aliasesBox, aliasForm) };
}
