// Code: what the function runs, a download of its zip, and an upload (a zip, or a folder zipped
// in the browser) through PUT /functions/{name}/code.

import { request, segment } from '../api.js';
import { announce, bytes, h } from '../dom.js';
import { clearErrors, formError, showError } from '../form.js';
import { codeChooser } from './create.js';

export function render(name, spec, { caps, reload }) {
  const uploaded = spec.code_size !== null && spec.code_size !== undefined;
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'Runtime'), h('dd', {}, spec.runtime || 'Python, on the router\'s path'),
    h('dt', {}, 'Handler'), h('dd', {}, h('code', {}, spec.handler)),
    h('dt', {}, uploaded ? 'Code SHA-256' : 'Module file SHA-256'), h('dd', {}, h('code', {}, spec.code_sha256 || '—')),
    h('dt', {}, 'Size'), h('dd', {}, uploaded ? bytes(spec.code_size) : 'not uploaded: the handler is imported from the router\'s path'));
  const download = h('button', { type: 'button', disabled: !uploaded }, 'Download zip');
  download.addEventListener('click', async () => {
    try {
      const response = await request('GET', `functions/${segment(name)}/code`, { raw: true });
      const link = h('a', { href: URL.createObjectURL(await response.blob()), download: `${name}.zip` });
      document.body.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    } catch (failure) {
      announce(failure.message, 'bad');
    }
  });
  const chooser = codeChooser(false);
  const upload = h('button', { type: 'submit', class: 'primary' }, 'Upload code');
  const form = h('form', { class: 'card', novalidate: true, method: 'post' },
    h('h3', {}, 'Replace the code'),
    h('p', { class: 'note' }, 'The next invocation runs the new code; idle environments of the old one stop, busy ones finish first.'),
    chooser.el, formError(), h('div', { class: 'actions' }, upload));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const zip = await chooser.payload();
    if (!zip) {
      showError(form, { field: 'code', message: 'Choose a zip file or a folder.' });
      return;
    }
    upload.disabled = true;
    try {
      const stored = await request('PUT', `functions/${segment(name)}/code`, { body: zip, headers: { 'Content-Type': 'application/zip' } });
      announce(`Uploaded: ${stored.code_sha256}`);
      reload();
    } catch (failure) {
      showError(form, failure);
    } finally {
      upload.disabled = false;
    }
  });
  const canUpload = caps.has('/functions/{name}/code', 'put');
  return { el: h('div', {}, h('div', { class: 'card' }, facts, h('div', { class: 'actions' }, download)), canUpload ? form : null) };
}
