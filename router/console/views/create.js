// Create a function: a name, how it runs, and optionally its code (a zip, or a folder zipped
// here in the browser). The rest of its settings are on its Configuration tab afterwards.

import { api, capabilities, segment } from '../api.js';
import { announce, h } from '../dom.js';
import { clearErrors, control, formError, read, showError } from '../form.js';
import { folderZip } from '../zip.js';

const RUNTIMES = ['python3.11', 'python3.12', 'python3.13', 'nodejs20.x', 'nodejs22.x', 'provided.al2023'];

export async function codePayload(kind, zipInput, folderInput) {
  if (kind === 'zip' && zipInput.files.length) return new Uint8Array(await zipInput.files[0].arrayBuffer());
  if (kind === 'folder' && folderInput.files.length) return folderZip(folderInput.files);
  return null;
}

export function base64(data) {
  let text = '';
  for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(text);
}

export function codeChooser(optional = true) {
  const zipInput = h('input', { type: 'file', accept: '.zip,application/zip', id: 'code-zip' });
  const folderInput = h('input', { type: 'file', id: 'code-folder', multiple: true });
  folderInput.webkitdirectory = true;
  const kinds = optional ? ['none', 'zip', 'folder'] : ['zip', 'folder'];
  const radios = kinds.map((value) => h('input', { type: 'radio', name: 'code-kind', value, id: `code-kind-${value}`, checked: value === kinds[0] }));
  const labels = { none: 'No code: a handler on the router\'s path', zip: 'A .zip file', folder: 'A folder (zipped in the browser)' };
  const zipField = h('div', { class: 'field', hidden: optional }, h('label', { for: 'code-zip' }, 'Zip file'), zipInput);
  const folderField = h('div', { class: 'field', hidden: true }, h('label', { for: 'code-folder' }, 'Folder'), folderInput,
    h('small', { class: 'hint' }, 'Every file under it; bootstrap and *.sh are made executable.'));
  const kind = () => radios.find((radio) => radio.checked).value;
  radios.forEach((radio) => radio.addEventListener('change', () => {
    zipField.hidden = kind() !== 'zip';
    folderField.hidden = kind() !== 'folder';
  }));
  const el = h('fieldset', { class: 'group', dataset: { for: 'code' } }, h('legend', {}, 'Code'),
    radios.map((radio) => h('label', { class: 'check', for: radio.id }, radio, ` ${labels[radio.value]}`)),
    zipField, folderField, h('p', { class: 'field-error', role: 'alert' }));
  return { el, kind, payload: () => codePayload(kind(), zipInput, folderInput) };
}

export function render() {
  const form = h('form', { class: 'card', novalidate: true, method: 'post' });
  const el = h('section', {}, h('p', { class: 'crumbs' }, h('a', { href: '#/functions' }, 'Functions'), ' / new'),
    h('h1', {}, 'Create a function'), form);

  capabilities().then((caps) => {
    const schema = caps.resolve(caps.schema('Function'));
    const resolve = caps.resolve;
    const name = h('div', { class: 'field', dataset: { for: 'name' } },
      h('label', { for: 'fn-name' }, 'Name'),
      h('input', { id: 'fn-name', type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'fn-name-hint' }),
      h('small', { class: 'hint', id: 'fn-name-hint' }, '1-64 letters, digits, ".", "_" or "-"'),
      h('p', { class: 'field-error', role: 'alert' }));
    const code = codeChooser();
    const fields = ['runtime', 'handler', 'timeout_s', 'memory_mb', 'description']
      .map((key) => control(key, schema.properties[key], undefined, key, resolve));
    const runtime = fields[0].querySelector('input');
    const list = h('datalist', { id: 'runtimes' }, RUNTIMES.map((value) => h('option', { value })));
    runtime.setAttribute('list', 'runtimes');
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create function');
    form.append(name, code.el, ...fields, list, formError(), h('div', { class: 'actions' }, submit));

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const fnName = form.querySelector('#fn-name').value.trim();
      if (!fnName) {
        showError(form, { field: 'name', message: 'Give the function a name.' });
        return;
      }
      submit.disabled = true;
      try {
        const exists = await api.get(`functions/${segment(fnName)}`).then(() => true, (e) => (e.status === 404 ? false : Promise.reject(e)));
        if (exists) {
          showError(form, { field: 'name', message: `A function named ${fnName} exists already: edit it on its page.` });
          return;
        }
        const spec = read(form);
        const zip = await code.payload();
        if (code.kind() !== 'none' && !zip) {
          showError(form, { field: 'code', message: 'Choose the code to upload, or "No code".' });
          return;
        }
        if (zip) spec.code = { zip: base64(zip) };
        await api.put(`functions/${segment(fnName)}`, spec);
        announce(`Created ${fnName}`);
        window.location.hash = `#/functions/${encodeURIComponent(fnName)}/configuration`;
      } catch (failure) {
        showError(form, failure);
      } finally {
        submit.disabled = false;
      }
    });
  }).catch((failure) => form.append(h('p', { class: 'form-error', role: 'alert' }, failure.message)));
  return { el };
}
