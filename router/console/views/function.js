// One function's page: its header and a tab per part (configuration, code, versions and aliases
// when the API has them, triggers, test, monitor, logs, dead letters).

import { api, capabilities, segment } from '../api.js';
import { announce, button, confirmDialog, h } from '../dom.js';
import * as configuration from './config.js';
import * as code from './code.js';
import * as versions from './versions.js';
import * as triggers from './triggers.js';
import * as test from './test.js';
import * as monitor from './monitor.js';
import * as logs from './logs.js';
import * as dlq from './dlq.js';

const TABS = [
  ['configuration', 'Configuration', configuration],
  ['code', 'Code', code],
  ['versions', 'Versions and aliases', versions],
  ['triggers', 'Triggers', triggers],
  ['test', 'Test', test],
  ['monitor', 'Monitor', monitor],
  ['logs', 'Logs', logs],
  ['dead-letters', 'Dead letters', dlq],
];

export function render(name, tab) {
  const summary = h('p', { class: 'summary' }, 'Loading…');
  const nav = h('nav', { class: 'tabs', 'aria-label': `${name}: parts` });
  const panel = h('div', { class: 'panel' });
  const remove = button('Delete function', async () => {
    const sure = await confirmDialog(`Delete ${name}?`, `The function ${name} is removed with its queue; its triggers must be deleted first.`, 'Delete function');
    if (!sure) return;
    try {
      await api.del(`functions/${segment(name)}`);
      announce(`Deleted ${name}`);
      window.location.hash = '#/functions';
    } catch (failure) {
      announce(failure.message, 'bad');
    }
  }, { class: 'danger quiet' });
  const el = h('section', {},
    h('p', { class: 'crumbs' }, h('a', { href: '#/functions' }, 'Functions'), ` / ${name}`),
    h('div', { class: 'heading' }, h('h1', {}, name), remove),
    summary, nav, panel);
  let child = null;
  let disposed = false;

  const load = async () => {
    const [spec, caps] = await Promise.all([api.get(`functions/${segment(name)}`), capabilities()]);
    if (disposed) return;
    summary.textContent = `${spec.runtime || 'Python on the router\'s path'} · ${spec.handler} · revision ${spec.version}${spec.description ? ` · ${spec.description}` : ''}`;
    const shown = TABS.filter(([key]) => key !== 'versions' || versions.available(caps));
    nav.replaceChildren(h('ul', {}, shown.map(([key, label]) => h('li', {},
      h('a', { href: `#/functions/${encodeURIComponent(name)}/${key}`, 'aria-current': key === tab ? 'page' : null, dataset: { tab: key } }, label)))));
    const chosen = shown.find(([key]) => key === tab);
    if (!chosen) {
      panel.replaceChildren(h('p', {}, `No tab ${tab} here.`));
      return;
    }
    child = chosen[2].render(name, spec, { caps, reload: () => { child?.dispose?.(); load(); } });
    panel.replaceChildren(h('h2', { class: 'sr-only' }, chosen[1]), child.el);
  };
  load().catch((failure) => {
    summary.textContent = '';
    panel.replaceChildren(h('p', { class: 'form-error', role: 'alert' },
      failure.status === 404 ? `There is no function ${name}.` : `Could not load ${name}: ${failure.message}`));
  });
  return { el, dispose: () => { disposed = true; child?.dispose?.(); } };
}
