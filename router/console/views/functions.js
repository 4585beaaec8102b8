// Functions: every function with its runtime, version and state, and its last hour as this tab
// has seen it in /metrics (invocations, errors, p99), its concurrency and queue depth now.

import { api } from '../api.js';
import { clock, duration, field, h, number, table } from '../dom.js';
import { F, sampler } from '../metrics.js';

const HOUR_MS = 3600 * 1000;
const REFRESH_MS = 10000;

export function state(spec, latest) {
  if (!latest) return 'no data yet';
  const [busy, idle, running] = [latest[F.busy], latest[F.idle], latest[F.concurrency]];
  if (running > 0) return `running ${running}`;
  if (busy + idle > 0) return `warm (${busy + idle} environment${busy + idle === 1 ? '' : 's'})`;
  return spec.isolation === 'process' ? 'cold (scaled to zero)' : 'ready';
}

export function render() {
  const search = h('input', { type: 'search', placeholder: 'name, handler, runtime or description', autocomplete: 'off' });
  const note = h('p', { class: 'note', id: 'window-note' });
  const body = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true }, 'No functions match.');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const grid = table('Functions', ['Name', 'Runtime', 'Revision', 'State', 'Invocations (1 h)', 'Errors (1 h)', 'p99 (1 h)', 'Concurrency', 'Queue'], [], { class: 'functions' });
  grid.querySelector('tbody').replaceWith(body);
  let specs = [];
  const rows = new Map();

  const el = h('section', {},
    h('div', { class: 'heading' }, h('h1', {}, 'Functions'),
      h('a', { class: 'button primary', href: '#/functions/new' }, 'Create function')),
    field('Search functions', search),
    note, error, grid, empty);

  function matches(name, spec, words) {
    const text = `${name} ${spec.handler} ${spec.runtime || 'python'} ${spec.description || ''}`.toLowerCase();
    return words.every((word) => text.includes(word));
  }

  function draw() {
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.name : null;
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    rows.clear();
    const shown = specs.filter((spec) => matches(spec.name, spec, words));
    body.replaceChildren(...shown.map((spec) => {
      const cells = {};
      const cell = (key, props = {}) => { cells[key] = h('td', { ...props, dataset: { cell: key } }); return cells[key]; };
      const link = h('a', { href: `#/functions/${encodeURIComponent(spec.name)}`, dataset: { name: spec.name } }, spec.name);
      const row = h('tr', { dataset: { function: spec.name } },
        h('th', { scope: 'row' }, link, spec.description ? h('small', { class: 'muted block' }, spec.description) : null),
        h('td', {}, spec.runtime || 'python (router path)'),
        h('td', { class: 'num' }, String(spec.version)),
        cell('state'), cell('invocations', { class: 'num' }), cell('errors', { class: 'num' }),
        cell('p99', { class: 'num' }), cell('concurrency', { class: 'num' }), cell('queue', { class: 'num' }));
      rows.set(spec.name, { spec, cells });
      return row;
    }));
    empty.hidden = shown.length > 0 || specs.length === 0;
    if (specs.length === 0) body.append(h('tr', {}, h('td', { colspan: 9 }, 'No functions yet: create one.')));
    update(sampler.history);
    if (focused) body.querySelector(`a[data-name="${CSS.escape(focused)}"]`)?.focus();
  }

  function update(history) {
    const now = Date.now();
    const since = history.since;
    note.textContent = since === null
      ? 'Live figures start with the first sample of /metrics, in a few seconds.'
      : `Invocations, errors and p99 over the last hour${now - since < HOUR_MS ? `, as seen since ${clock(since)} (this tab started watching then)` : ''}; concurrency and queue depth now. Updated every 5 s.`;
    for (const [name, { spec, cells }] of rows) {
      const totals = history.totals(name, now - HOUR_MS);
      const latest = history.latest(name);
      cells.state.textContent = state(spec, latest);
      cells.invocations.textContent = since === null ? '—' : number(totals.invocations);
      cells.errors.textContent = since === null ? '—' : number(totals.errors);
      cells.errors.classList.toggle('bad', totals.errors > 0);
      cells.p99.textContent = duration(totals.p99);
      cells.concurrency.textContent = latest ? `${number(latest[F.concurrency])} / ${spec.concurrency.max}` : '—';
      cells.queue.textContent = latest ? number(latest[F.queue]) : '—';
    }
  }

  async function load() {
    try {
      specs = (await api.get('functions')).functions;
      error.textContent = '';
      draw();
    } catch (failure) {
      error.textContent = `Could not list functions: ${failure.message}`;
    }
  }

  search.addEventListener('input', draw);
  const unsubscribe = sampler.subscribe(update);
  const timer = setInterval(load, REFRESH_MS);
  load();
  return { el, dispose: () => { unsubscribe(); clearInterval(timer); } };
}
