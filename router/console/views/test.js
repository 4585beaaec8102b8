// Test: an event editor with templates (a function URL request, an AMQP message, a schedule
// tick) and saved test events, run through Invoke; the result, the duration from the REPORT
// line and the invocation's log lines.
//
// Saved test events are kept in this browser's localStorage, per router and function: they are
// the user's own sample events, not the API's data, and never include the token.

import { api, invoke, segment } from '../api.js';
import { announce, button, field, h, pretty } from '../dom.js';

const POLL_MS = 400;
const WAIT_MS = 10000;

// crypto.randomUUID needs a secure context; a router reached over plain HTTP is not one.
function randomId() {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function templates(name) {
  const now = new Date();
  const id = randomId();
  return {
    'Function URL request (webhook)': {
      version: '2.0', routeKey: '$default', rawPath: '/', rawQueryString: '',
      headers: { 'content-type': 'application/json', 'user-agent': 'console-test' },
      requestContext: {
        accountId: 'anonymous', apiId: name, domainName: window.location.host, domainPrefix: name,
        http: { method: 'POST', path: '/', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'console-test' },
        requestId: id, routeKey: '$default', stage: '$default', time: now.toUTCString(), timeEpoch: now.getTime(),
      },
      body: JSON.stringify({ hello: 'world' }), isBase64Encoded: false,
    },
    'AMQP message': {
      body: { hello: 'world' }, headers: {}, routing_key: 'test.key', exchange: 'test', message_id: id,
      correlation_id: null, content_type: 'application/json', timestamp: Math.floor(now.getTime() / 1000),
      redelivered: false, attempt: 1,
    },
    'Schedule tick': {
      version: '0', id, 'detail-type': 'Scheduled Event', source: 'aws.events', account: '000000000000',
      time: now.toISOString().replace(/\.\d+Z$/, 'Z'), region: 'local', resources: [`schedule/${name}`], detail: {},
    },
    'Empty event {}': {},
  };
}

function storeKey(name) {
  return `trigger-router.test-events.${new URL('..', window.location.href).pathname}.${name}`;
}

function saved(name) {
  try { return JSON.parse(localStorage.getItem(storeKey(name)) || '{}'); } catch { return {}; }
}

export function report(text) {
  const line = text.split('\n').find((l) => l.startsWith('REPORT '));
  if (!line) return null;
  const pick = (label) => {
    const match = new RegExp(`${label}: ([\\d.]+) (ms|MB)`).exec(line);
    return match ? Number(match[1]) : null;
  };
  return { duration: pick('(?<!Billed |Init )Duration'), billed: pick('Billed Duration'), init: pick('Init Duration'), memory: pick('Max Memory Used') };
}

export function render(name) {
  const editor = h('textarea', { rows: 14, spellcheck: 'false', class: 'code', id: 'test-event' }, pretty(templates(name)['Function URL request (webhook)']));
  const templateSelect = h('select', {}, h('option', { value: '' }, '(choose a template)'), Object.keys(templates(name)).map((k) => h('option', { value: k }, k)));
  const savedSelect = h('select', {});
  const saveName = h('input', { type: 'text', autocomplete: 'off', placeholder: 'e.g. big order' });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run test');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const result = h('section', { class: 'result', 'aria-live': 'polite', 'aria-label': 'Test result' });

  const drawSaved = () => {
    const events = saved(name);
    savedSelect.replaceChildren(h('option', { value: '' }, Object.keys(events).length ? '(choose a saved event)' : '(none saved yet)'),
      ...Object.keys(events).sort().map((k) => h('option', { value: k }, k)));
  };
  drawSaved();
  templateSelect.addEventListener('change', () => {
    if (templateSelect.value) editor.value = pretty(templates(name)[templateSelect.value]);
  });
  savedSelect.addEventListener('change', () => {
    const events = saved(name);
    if (savedSelect.value in events) {
      editor.value = events[savedSelect.value];
      saveName.value = savedSelect.value;
    }
  });
  const save = button('Save event', () => {
    const label = saveName.value.trim();
    if (!label) { error.textContent = 'Name the event to save it.'; saveName.focus(); return; }
    localStorage.setItem(storeKey(name), JSON.stringify({ ...saved(name), [label]: editor.value }));
    drawSaved();
    savedSelect.value = label;
    announce(`Saved test event ${label}`);
  });
  const forget = button('Delete saved event', () => {
    const events = saved(name);
    if (!(savedSelect.value in events)) return;
    delete events[savedSelect.value];
    localStorage.setItem(storeKey(name), JSON.stringify(events));
    announce('Deleted the saved event');
    drawSaved();
  }, { class: 'quiet' });

  const form = h('form', { class: 'card', novalidate: true, method: 'post' },
    h('div', { class: 'row' }, field('Template', templateSelect), field('Saved events', savedSelect)),
    field('Event (JSON)', editor, 'Sent as the body of Invoke: what the handler receives as event'),
    h('div', { class: 'row' }, field('Save as', saveName), h('div', { class: 'actions' }, save, forget)),
    error, h('div', { class: 'actions' }, run));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try { JSON.parse(editor.value); } catch (failure) {
      error.textContent = `The event is not JSON: ${failure.message}`;
      editor.focus();
      return;
    }
    run.disabled = true;
    result.replaceChildren(h('p', {}, 'Running…'));
    try {
      const outcome = await invoke(name, editor.value);
      show(outcome);
    } catch (failure) {
      result.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, failure.message));
    } finally {
      run.disabled = false;
    }
  });

  let polling = null;
  async function show(outcome) {
    const failed = !outcome.ok;
    const headline = failed
      ? `Failed (HTTP ${outcome.status})${outcome.payload && outcome.payload.errorType ? `: ${outcome.payload.errorType}` : ''}`
      : `Succeeded (HTTP ${outcome.status})`;
    const facts = h('dl', { class: 'facts' },
      h('dt', {}, 'Request id'), h('dd', {}, outcome.requestId ? h('a', { href: `#/invocations/${encodeURIComponent(outcome.requestId)}` }, outcome.requestId) : '—'),
      h('dt', {}, 'Duration'), h('dd', { class: 'test-duration' }, '…'),
      outcome.version ? [h('dt', {}, 'Version'), h('dd', {}, outcome.version)] : null);
    const logs = h('pre', { class: 'log test-log', tabindex: '0', 'aria-label': 'Log lines' }, 'Waiting for the log lines…');
    result.replaceChildren(
      h('h3', { class: failed ? 'bad' : 'good', id: 'test-outcome' }, headline), facts,
      h('h4', {}, failed ? 'Error' : 'Result'), h('pre', { class: 'code', tabindex: '0', id: 'test-result' }, outcome.json ? pretty(outcome.payload) : outcome.payload),
      h('h4', {}, 'Log lines'), logs);
    if (!outcome.requestId) return;
    clearTimeout(polling);
    const deadline = Date.now() + WAIT_MS;
    const poll = async () => {
      try {
        const { entries } = await api.get(`functions/${segment(name)}/logs`, { request_id: outcome.requestId, limit: 10 });
        const text = entries.map((entry) => entry.text).join('\n');
        const figures = report(text);
        if (figures) {
          logs.textContent = text;
          const init = figures.init !== null ? `, init ${figures.init} ms (cold start)` : '';
          facts.querySelector('.test-duration').textContent = `${figures.duration} ms (billed ${figures.billed} ms${init})`;
          return;
        }
      } catch { /* try again until the deadline */ }
      if (Date.now() < deadline) polling = setTimeout(poll, POLL_MS);
      else {
        logs.textContent = 'No log lines were stored for this invocation (a run that printed nothing and succeeded is not kept).';
        facts.querySelector('.test-duration').textContent = '—';
      }
    };
    poll();
  }

  return { el: h('div', {}, form, result), dispose: () => clearTimeout(polling) };
}
