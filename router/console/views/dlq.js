// Dead letters of one function: every attempt's error, the event, replay one or all, purge one
// or all (each after a confirmation).

import { api, segment } from '../api.js';
import { announce, button, confirmDialog, h, number, pretty, table, when } from '../dom.js';

const PAGE = 50;

export function render(name) {
  const base = `functions/${segment(name)}/dlq`;
  const count = h('p', { class: 'summary', id: 'dlq-count', 'aria-live': 'polite' }, 'Reading the dead-letter queue…');
  const list = h('div', { class: 'dlq-list' });
  const more = button('Load more', () => page(next), { hidden: true });
  const replayAll = button('Replay all', async () => {
    if (!(await confirmDialog(`Replay every dead letter of ${name}?`, 'Each starts again at attempt 1 under its invocation id; malformed ones are skipped.', 'Replay all', false))) return;
    await act(() => api.post(`${base}/replay`, { all: true }), (r) => `Replayed ${r.replayed}${r.skipped ? `, skipped ${r.skipped.length}` : ''}`);
  });
  const purgeAll = button('Purge all', async () => {
    if (!(await confirmDialog(`Purge every dead letter of ${name}?`, 'They are deleted for good: nothing can replay them afterwards.', 'Purge all'))) return;
    await act(() => api.del(`${base}`), (r) => `Purged ${r.purged}`);
  }, { class: 'danger' });
  let next = null;

  async function act(call, message) {
    try {
      const answer = await call();
      announce(message(answer));
      start();
    } catch (failure) {
      announce(failure.message, 'bad');
    }
  }

  function letter(item) {
    const errors = item.errors || [];
    const event = item.truncated
      ? h('div', {}, h('pre', { class: 'code' }, `${item.preview}…`), button('Show the whole event', async (e) => {
        const whole = await api.get(`${base}/${segment(item.id)}`);
        e.target.replaceWith(h('pre', { class: 'code' }, pretty(whole.event)));
      }))
      : h('pre', { class: 'code' }, pretty(item.event));
    return h('article', { class: 'card letter', dataset: { id: item.id } },
      h('div', { class: 'heading' }, h('h3', {}, h('code', {}, item.id)),
        h('div', { class: 'actions' },
          button('Replay', () => act(() => api.post(`${base}/replay`, { id: item.id }), () => `Replayed ${item.id}`), { 'aria-label': `Replay ${item.id}` }),
          button('Purge', async () => {
            if (!(await confirmDialog(`Purge ${item.id}?`, 'It is deleted for good.', 'Purge'))) return;
            await act(() => api.del(`${base}/${segment(item.id)}`), () => `Purged ${item.id}`);
          }, { class: 'danger quiet', 'aria-label': `Purge ${item.id}` }))),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Reason'), h('dd', {}, String(item.reason ?? '—')),
        h('dt', {}, 'Kind'), h('dd', {}, item.kind + (item.malformed ? `: ${item.malformed}` : '')),
        h('dt', {}, 'Attempts'), h('dd', {}, number(item.attempts)),
        h('dt', {}, 'Accepted'), h('dd', {}, when(item.accepted_at)),
        h('dt', {}, 'Trigger'), h('dd', {}, item.trigger || '—'),
        h('dt', {}, 'Event id'), h('dd', {}, item.event_id || '—'),
        h('dt', {}, 'Version'), h('dd', {}, item.function_version ?? '—'),
        h('dt', {}, 'Invocation'), h('dd', {}, item.kind === 'sealed' ? h('a', { href: `#/invocations/${encodeURIComponent(item.id)}` }, item.id) : '—')),
      errors.length ? table(`Attempts of ${item.id}`, ['Attempt', 'Outcome', 'Error', 'Message', 'At'], errors.map((e) => h('tr', {},
        h('td', { class: 'num' }, String(e.attempt)), h('td', {}, e.status || ''), h('td', {}, e.type || ''),
        h('td', {}, h('span', { class: 'message' }, e.message || '')), h('td', {}, when(e.at))))) : null,
      h('details', {}, h('summary', {}, `Event (${number(item.size)} bytes)`), event));
  }

  async function page(after) {
    try {
      const answer = await api.get(base, { limit: PAGE, after: after || undefined });
      next = answer.next;
      more.hidden = !next;
      count.textContent = `${number(answer.count)} dead letter${answer.count === 1 ? '' : 's'}`;
      if (!after) list.replaceChildren();
      if (!answer.messages.length && !after) list.append(h('p', { class: 'empty' }, 'None: every event of this function ran or is still retrying.'));
      list.append(...answer.messages.map(letter));
      replayAll.disabled = purgeAll.disabled = answer.count === 0;
    } catch (failure) {
      count.textContent = `Could not read the dead letters: ${failure.message}`;
    }
  }

  function start() { page(null); }
  start();
  return { el: h('div', {}, h('div', { class: 'heading' }, count, h('div', { class: 'actions' }, replayAll, purgeAll)), list, more) };
}
