// Dead letters across functions: how many each function's dead-letter queue holds (from the
// router's metrics, refreshed with every sample), each linking to its function's tab.

import { api } from '../api.js';
import { h, number, table } from '../dom.js';
import { F, sampler } from '../metrics.js';

export function render() {
  const body = h('tbody');
  const grid = table('Dead letters per function', ['Function', 'Dead letters', ''], []);
  grid.querySelector('tbody').replaceWith(body);
  let names = [];
  const draw = (history) => {
    body.replaceChildren(...names.map((name) => {
      const latest = history.latest(name);
      const depth = latest ? latest[F.deadLetters] : null;
      return h('tr', { dataset: { function: name } },
        h('th', { scope: 'row' }, name),
        h('td', { class: `num${depth ? ' bad' : ''}` }, depth === null ? '—' : number(depth)),
        h('td', {}, h('a', { href: `#/functions/${encodeURIComponent(name)}/dead-letters`, 'aria-label': `Dead letters of ${name}` }, 'Show, replay or purge')));
    }));
  };
  api.get('functions').then(({ functions }) => {
    names = functions.map((f) => f.name);
    draw(sampler.history);
  }).catch((failure) => body.replaceChildren(h('tr', {}, h('td', { colspan: 3 }, failure.message))));
  const unsubscribe = sampler.subscribe(draw);
  return {
    el: h('section', {}, h('h1', {}, 'Dead letters'),
      h('p', { class: 'note' }, 'Events whose attempts ran out, per function (counted every second by the router). Open a function to see every attempt\'s error, replay or purge.'),
      grid),
    dispose: unsubscribe,
  };
}
