// Logs: the function's invocation output (START, the handler's lines, END, REPORT), newest at
// the bottom, narrowed by text, request id or age, and followed live from the API's cursor.

import { api, segment } from '../api.js';
import { field, h, when } from '../dom.js';

const FOLLOW_MS = 2000;
const SHOWN = 500;

export function render(name, spec, ctx, preset = {}) {
  const filter = h('input', { type: 'search', autocomplete: 'off', value: preset.filter || '' });
  const requestId = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', value: preset.requestId || '' });
  const since = h('select', {}, [['15m', 'last 15 minutes'], ['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['', 'all kept']]
    .map(([value, label]) => h('option', { value, selected: value === '1h' }, label)));
  const live = h('input', { type: 'checkbox', id: 'logs-live', checked: true });
  const list = h('div', { class: 'log-list', role: 'log', 'aria-label': `Logs of ${name}`, tabindex: '0' });
  const status = h('p', { class: 'note' });
  const form = h('form', { class: 'card filters', novalidate: true, method: 'post', role: 'search' },
    h('div', { class: 'row' }, field('Text contains', filter), field('Request id', requestId), field('Since', since)),
    h('div', { class: 'actions' },
      h('label', { class: 'check', for: 'logs-live' }, live, ' Live tail'),
      h('button', { type: 'submit', class: 'primary' }, 'Show')));
  let cursor = null;
  let timer = null;
  let generation = 0;

  const query = () => ({ filter: filter.value || undefined, request_id: requestId.value.trim() || undefined });

  function entry(item) {
    return h('article', { class: 'log-entry' },
      h('header', {}, h('time', {}, when(item.time)), ' ',
        h('a', { href: `#/invocations/${encodeURIComponent(item.request_id)}` }, item.request_id)),
      h('pre', { class: 'log' }, item.text));
  }

  function add(entries) {
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
    list.querySelector('.empty')?.remove();
    list.append(...entries.map(entry));
    while (list.children.length > SHOWN) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  async function load() {
    generation += 1;
    const mine = generation;
    clearTimeout(timer);
    status.textContent = 'Loading…';
    try {
      const answer = await api.get(`functions/${segment(name)}/logs`, { ...query(), since: since.value || undefined, limit: 100 });
      if (mine !== generation) return;
      cursor = answer.cursor;
      list.replaceChildren();
      if (answer.entries.length) add(answer.entries);
      else list.append(h('p', { class: 'empty' }, 'No output matches.'));
      status.textContent = `${answer.entries.length} invocation${answer.entries.length === 1 ? '' : 's'}${live.checked ? '; following' : ''}.`;
      follow(mine);
    } catch (failure) {
      status.textContent = `Could not read the logs: ${failure.message}`;
    }
  }

  function follow(mine) {
    clearTimeout(timer);
    if (!live.checked) return;
    timer = setTimeout(async () => {
      if (mine !== generation) return;
      try {
        const answer = await api.get(`functions/${segment(name)}/logs`, { ...query(), after: cursor || '0', limit: 100 });
        if (mine !== generation) return;
        cursor = answer.cursor || cursor;
        if (answer.entries.length) add(answer.entries);
      } catch { /* the next turn tries again */ }
      follow(mine);
    }, FOLLOW_MS);
  }

  form.addEventListener('submit', (event) => { event.preventDefault(); load(); });
  live.addEventListener('change', () => {
    status.textContent = live.checked ? 'Following.' : 'Paused.';
    follow(generation);
  });
  load();
  return { el: h('div', {}, form, status, list), dispose: () => { generation += 1; clearTimeout(timer); } };
}
