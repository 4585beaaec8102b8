// Usage: billed GB-seconds per function per day (UTC), as a chart and a table, from the usage
// API (shared by all replicas, kept for a year), one request per day.

import { api } from '../api.js';
import { barChart } from '../charts.js';
import { button, h, number, table } from '../dom.js';

const DAY_MS = 86400e3;

function days(count) {
  const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  return Array.from({ length: count }, (_, i) => today - (count - 1 - i) * DAY_MS);
}

export function render() {
  let span = 7;
  const out = h('div', { 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
  const choices = [7, 14, 30].map((count) => button(`${count} days`, (event) => {
    span = count;
    choices.forEach((choice) => choice.setAttribute('aria-pressed', String(choice === event.currentTarget)));
    load();
  }, { 'aria-pressed': String(count === span) }));

  async function load() {
    const starts = days(span);
    try {
      const reports = await Promise.all(starts.map((start) => api.get('usage', {
        since: new Date(start).toISOString(),
        until: new Date(start + DAY_MS - 1000).toISOString(),
      })));
      const labels = starts.map((start) => new Date(start).toISOString().slice(0, 10));
      const functions = [...new Set(reports.flatMap((r) => r.functions.map((f) => f.function)))].sort();
      const value = (report, fn, key) => (report.functions.find((f) => f.function === fn) || {})[key] || 0;
      const stacks = functions.map((fn) => ({ name: fn, values: reports.map((r) => value(r, fn, 'gb_seconds')) }));
      const totals = functions.map((fn) => ({
        fn,
        invocations: reports.reduce((s, r) => s + value(r, fn, 'invocations'), 0),
        billed: reports.reduce((s, r) => s + value(r, fn, 'billed_duration_ms'), 0),
        gbs: reports.reduce((s, r) => s + value(r, fn, 'gb_seconds'), 0),
      }));
      out.replaceChildren(
        barChart({ title: `Billed GB-seconds per day, last ${span} days (UTC)`, categories: labels, stacks }),
        table('Usage per function', ['Function', 'Invocations', 'Billed duration', 'GB-seconds'], totals.length
          ? totals.map((t) => h('tr', {}, h('th', { scope: 'row' }, t.fn), h('td', { class: 'num' }, number(t.invocations)),
            h('td', { class: 'num' }, `${number(t.billed / 1000, 3)} s`), h('td', { class: 'num' }, number(t.gbs, 6))))
          : [h('tr', {}, h('td', { colspan: 4 }, 'Nothing ran in this period.'))]));
    } catch (failure) {
      out.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, failure.message));
    }
  }
  load();
  return {
    el: h('section', {}, h('h1', {}, 'Usage'),
      h('p', { class: 'note' }, 'Billed duration (rounded up to the millisecond) times configured memory, per function, over whole UTC hours, counted by every replica.'),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Period' }, choices), out),
  };
}
