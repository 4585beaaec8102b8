// Monitor: this function's invocations, errors, duration percentiles, concurrency, cold starts,
// throttles and queue depth over 1 h, 6 h or 24 h, from the tab's samples of /metrics.

import { timeChart } from '../charts.js';
import { button, clock, duration, h, number } from '../dom.js';
import { F, INTERVAL_MS, sampler } from '../metrics.js';

// 15 min for watching a change as it happens; 1 h, 6 h and 24 h for how it has been.
const WINDOWS = { '15 min': 900e3, '1 h': 3600e3, '6 h': 6 * 3600e3, '24 h': 24 * 3600e3 };
const POINTS = 60;

export function render(name) {
  let windowMs = WINDOWS['1 h'];
  const choices = Object.entries(WINDOWS).map(([label, ms]) => button(label, (event) => {
    windowMs = ms;
    choices.forEach((choice) => choice.setAttribute('aria-pressed', String(choice === event.currentTarget)));
    draw(sampler.history);
  }, { 'aria-pressed': String(ms === windowMs) }));
  const stat = (label, id) => h('div', { class: 'stat' }, h('span', { class: 'stat-label', id: `${id}-label` }, label),
    h('output', { class: 'stat-value', id, 'aria-labelledby': `${id}-label` }, '—'));
  const stats = h('div', { class: 'stats' },
    stat('Invocations', 'monitor-invocations'), stat('Errors', 'monitor-errors'), stat('p99 duration', 'monitor-p99'),
    stat('Cold starts', 'monitor-cold-starts'), stat('Throttles', 'monitor-throttles'),
    stat('Running now', 'monitor-concurrency'), stat('Queued now', 'monitor-queue'));
  const note = h('p', { class: 'note' });
  const charts = h('div', { class: 'charts' });
  const el = h('div', {}, h('div', { class: 'actions', role: 'group', 'aria-label': 'Time window' }, choices), note, stats, charts);

  function draw(history) {
    const to = Date.now();
    const from = to - windowMs;
    const since = history.since;
    note.textContent = since === null
      ? 'Waiting for the first sample of /metrics…'
      : `From this router's /metrics, sampled every ${INTERVAL_MS / 1000} s by this tab${since > from ? ` since ${clock(since)}: earlier is not known here (Grafana keeps the long history)` : ''}.`;
    const totals = history.totals(name, from);
    const latest = history.latest(name);
    const set = (id, text) => { el.querySelector(`#${id}`).textContent = text; };
    set('monitor-invocations', since === null ? '—' : number(totals.invocations));
    set('monitor-errors', since === null ? '—' : number(totals.errors));
    set('monitor-p99', duration(totals.p99));
    set('monitor-cold-starts', since === null ? '—' : number(totals.coldStarts));
    set('monitor-throttles', since === null ? '—' : number(totals.throttles));
    set('monitor-concurrency', latest ? number(latest[F.concurrency]) : '—');
    set('monitor-queue', latest ? number(latest[F.queue]) : '—');

    const points = history.series(name, from, to, POINTS);
    const perMinute = 60000 / (windowMs / POINTS);
    const line = (label, pick) => ({ name: label, points: points.map((p) => ({ t: p.t, v: p.seen ? pick(p) : null })) });
    const gauge = (slot) => (p) => (p.gauge ? p.gauge[slot] : 0);
    charts.replaceChildren(
      timeChart({ title: 'Invocations per minute', from, to, series: [line('succeeded', (p) => p.succeeded * perMinute), line('errors', (p) => p.errors * perMinute)] }),
      timeChart({ title: 'Duration', from, to, format: duration, series: [line('p50', (p) => p.p50), line('p90', (p) => p.p90), line('p99', (p) => p.p99)] }),
      timeChart({ title: 'Concurrency', from, to, format: (v) => number(v, 1), series: [line('running', gauge(F.concurrency)), line('environments', (p) => (p.gauge ? p.gauge[F.busy] + p.gauge[F.idle] : 0))] }),
      timeChart({ title: 'Cold starts and throttles per minute', from, to, series: [line('cold starts', (p) => p.coldStarts * perMinute), line('throttles', (p) => p.throttles * perMinute)] }),
      timeChart({ title: 'Queue depth', from, to, format: (v) => number(v, 1), series: [line('queued', gauge(F.queue)), line('dead letters', gauge(F.deadLetters))] }));
  }

  const unsubscribe = sampler.subscribe(draw);
  if (!sampler.history.samples.length) draw(sampler.history);
  return { el, dispose: unsubscribe };
}
