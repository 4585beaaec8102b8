// Invocations by id: the record of an async invocation (or of any invocation whose record is
// kept), its result or error, and its log lines.

import { api, segment } from '../api.js';
import { field, h, number, pretty, when } from '../dom.js';

export function render(id) {
  const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', value: id });
  const form = h('form', { class: 'card', novalidate: true, method: 'post', role: 'search' },
    field('Invocation id', input, 'The id a 202 answered, X-Request-Id, or a dead letter\'s id'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Look up')));
  const out = h('div', { 'aria-live': 'polite' });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    if (wanted) window.location.hash = `#/invocations/${encodeURIComponent(wanted)}`;
  });
  if (id) show(id, out);
  return { el: h('section', {}, h('h1', {}, 'Invocations'), form, out) };
}

async function show(id, out) {
  out.replaceChildren(h('p', {}, 'Looking up…'));
  let record;
  try {
    record = await api.get(`invocations/${segment(id)}`);
  } catch (failure) {
    out.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, failure.message));
    return;
  }
  const error = record.error;
  const logs = h('pre', { class: 'log', tabindex: '0' }, 'Reading the log lines…');
  out.replaceChildren(h('article', { class: 'card invocation' },
    h('h2', {}, h('span', { class: `badge ${record.status}` }, record.status), ' ', h('code', {}, record.id)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Function'), h('dd', {}, h('a', { href: `#/functions/${encodeURIComponent(record.function)}` }, record.function)),
      h('dt', {}, 'Trigger'), h('dd', {}, record.trigger || '—'),
      h('dt', {}, 'Event id'), h('dd', {}, record.event_id || '—'),
      h('dt', {}, 'Version'), h('dd', {}, record.function_version ?? '—'),
      h('dt', {}, 'Attempt'), h('dd', {}, String(record.attempt)),
      h('dt', {}, 'Accepted'), h('dd', {}, when(record.created_at)),
      h('dt', {}, 'Started'), h('dd', {}, when(record.started_at)),
      h('dt', {}, 'Finished'), h('dd', {}, when(record.finished_at)),
      h('dt', {}, 'Duration'), h('dd', {}, record.duration_ms === null ? '—' : `${number(record.duration_ms, 2)} ms (billed ${number(record.billed_duration_ms)} ms)`)),
    error ? [h('h3', {}, `Error: ${error.type}`), h('p', {}, error.message), error.traceback ? h('pre', { class: 'code' }, error.traceback) : null]
      : [h('h3', {}, 'Result'), h('pre', { class: 'code' }, pretty(record.result))],
    h('h3', {}, 'Log lines'), logs));
  // Output is written behind, within a second or so: a run that just ended gets a few tries.
  const recent = record.finished_at && Date.now() / 1000 - record.finished_at < 30;
  for (let attempt = 0; attempt < (recent ? 6 : 1); attempt += 1) {
    if (attempt) await new Promise((resolve) => { setTimeout(resolve, 1000); });
    try {
      const { entries } = await api.get(`functions/${segment(record.function)}/logs`, { request_id: record.id, limit: 20 });
      if (entries.length) {
        logs.textContent = entries.map((e) => e.text).join('\n');
        return;
      }
      logs.textContent = 'None kept (a run that printed nothing and succeeded is not stored).';
    } catch (failure) {
      logs.textContent = `Could not read the log lines: ${failure.message}`;
    }
  }
}
