// Configuration: every field of the function's spec, from the API's schema, saved with PATCH.
// The API validates; its message appears beside the field it names.

import { api, segment } from '../api.js';
import { announce, h } from '../dom.js';
import { clearErrors, control, formError, read, showError } from '../form.js';

const NOT_EDITED = new Set(['code', 'version']); // code: the Code tab; version: the registry's

export function render(name, spec, { caps, reload }) {
  const schema = caps.resolve(caps.schema('Function'));
  const form = h('form', { class: 'card config', novalidate: true, method: 'post' });
  for (const [key, property] of Object.entries(schema.properties)) {
    if (NOT_EDITED.has(key)) continue;
    const el = control(key, property, spec[key], key, caps.resolve);
    if (el) form.append(el);
  }
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  form.append(formError(), h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      const stored = await api.patch(`functions/${segment(name)}`, read(form));
      announce(`Saved ${name}: revision ${stored.version}`);
      reload();
    } catch (failure) {
      showError(form, failure);
      announce(`Not saved: ${failure.message}`, 'bad');
    } finally {
      save.disabled = false;
    }
  });
  return { el: form };
}
