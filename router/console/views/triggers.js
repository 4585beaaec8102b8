// Triggers of this function: each with its webhook URL to copy and how its sender is verified,
// or its exchange and binding; create, edit and delete. The form is drawn from the API's schema
// of each trigger type, so a type the API gains (a schedule, say) comes with its fields.

import { ROOT, api, segment } from '../api.js';
import { announce, button, confirmDialog, copyButton, h, pretty } from '../dom.js';
import { clearErrors, control, formError, read, showError } from '../form.js';

const SCHEMES = {
  none: 'none: anyone who knows the URL can call it',
  'standard-webhooks': 'Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature (v1,<base64> HMAC-SHA256 of id.timestamp.body)',
  github: 'GitHub: X-Hub-Signature-256: sha256=<hex HMAC of the body>',
  stripe: 'Stripe: Stripe-Signature: t=<time>,v1=<hex HMAC of t.body>',
  slack: 'Slack: X-Slack-Signature: v0=<hex HMAC of v0:timestamp:body>, X-Slack-Request-Timestamp',
};

export function scheme(verify) {
  if (!verify) return '';
  if (verify.scheme === 'hmac') {
    const ts = verify.timestamp_header ? `, timestamp in ${verify.timestamp_header}` : '';
    return `HMAC: ${verify.header}: ${verify.prefix || ''}<${verify.encoding} ${verify.algorithm.toUpperCase()}>${ts}`;
  }
  const secrets = verify.secrets && verify.secrets.length ? ` (${verify.secrets.length} secret${verify.secrets.length > 1 ? 's' : ''})` : '';
  return (SCHEMES[verify.scheme] || verify.scheme) + secrets;
}

export function hookUrl(trigger) {
  return new URL(`hooks/${encodeURIComponent(trigger)}`, ROOT).href;
}

function targets(trigger, name) {
  return trigger.function === name || trigger.function.startsWith(`${name}:`);
}

function describe(trigger) {
  const { name, type, function: target, filter, description } = trigger;
  const rows = [['Type', type], ['Runs', target]];
  const extra = [];
  if (type === 'webhook') {
    const input = h('input', { type: 'text', readonly: true, value: hookUrl(name), 'aria-label': `URL of ${name}`, class: 'url' });
    extra.push(h('div', { class: 'copy-row' }, input, copyButton(input, 'Copy URL')));
    rows.push(['Mode', trigger.mode], ['Methods', trigger.methods.join(', ')], ['Verified by', scheme(trigger.verify)]);
    if (trigger.rate_limit) rows.push(['Rate limit', `${trigger.rate_limit.per_second}/s, burst ${trigger.rate_limit.burst}`]);
  } else if (type === 'amqp') {
    rows.push(['Exchange', `${trigger.exchange} (${trigger.exchange_type})`], ['Routing key', trigger.routing_key]);
  } else {
    for (const [key, value] of Object.entries(trigger)) {
      if (!['name', 'type', 'function', 'filter', 'description'].includes(key)) rows.push([key, typeof value === 'string' ? value : JSON.stringify(value)]);
    }
  }
  if (filter) rows.push(['Filter', pretty(filter)]);
  if (description) rows.push(['Description', description]);
  return [extra, h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, k === 'Filter' ? h('pre', {}, v) : v)]))];
}

export function render(name, spec, { caps }) {
  const list = h('div', { class: 'trigger-list' });
  const editor = h('div', {});
  const add = button('New trigger', () => edit(null), { class: 'primary' });
  const el = h('div', {}, h('div', { class: 'actions' }, add), editor, list);

  async function load() {
    const { triggers } = await api.get('triggers');
    const mine = triggers.filter((t) => targets(t, name));
    list.replaceChildren(...(mine.length ? mine.map((trigger) => h('article', { class: 'card trigger', dataset: { trigger: trigger.name } },
      h('div', { class: 'heading' }, h('h3', {}, trigger.name),
        h('div', { class: 'actions' },
          button('Edit', () => edit(trigger), { 'aria-label': `Edit ${trigger.name}` }),
          button('Delete', () => remove(trigger.name), { class: 'danger quiet', 'aria-label': `Delete ${trigger.name}` }))),
      describe(trigger))) : [h('p', { class: 'empty' }, 'No triggers run this function yet.')]));
  }

  async function remove(trigger) {
    if (!(await confirmDialog(`Delete trigger ${trigger}?`, 'Its webhook URL stops answering, or its binding is removed.', 'Delete trigger'))) return;
    try {
      await api.del(`triggers/${segment(trigger)}`);
      announce(`Deleted trigger ${trigger}`);
      load();
    } catch (failure) {
      announce(failure.message, 'bad');
    }
  }

  function edit(existing) {
    const types = caps.triggerTypes();
    const nameInput = h('input', { type: 'text', id: 'trigger-name', autocomplete: 'off', value: existing ? existing.name : '', disabled: Boolean(existing) });
    const typeSelect = h('select', { id: 'trigger-type', disabled: Boolean(existing) },
      types.map(({ type }) => h('option', { value: type, selected: existing ? existing.type === type : type === 'webhook' }, type)));
    const fields = h('div', {});
    const save = h('button', { type: 'submit', class: 'primary' }, existing ? 'Save trigger' : 'Create trigger');
    const form = h('form', { class: 'card', novalidate: true, method: 'post', 'aria-label': existing ? `Edit ${existing.name}` : 'New trigger' },
      h('h3', {}, existing ? `Edit ${existing.name}` : 'New trigger'),
      h('div', { class: 'field', dataset: { for: 'name' } }, h('label', { for: 'trigger-name' }, 'Trigger name'), nameInput,
        h('small', { class: 'hint' }, 'A webhook trigger answers at /hooks/<name>'), h('p', { class: 'field-error', role: 'alert' })),
      h('div', { class: 'field', dataset: { for: 'type' } }, h('label', { for: 'trigger-type' }, 'Type'), typeSelect),
      fields, formError(),
      h('div', { class: 'actions' }, button('Cancel', () => editor.replaceChildren()), save));
    const draw = () => {
      const { schema } = types.find((t) => t.type === typeSelect.value);
      const values = existing && existing.type === typeSelect.value ? existing : { function: name };
      fields.replaceChildren(...Object.entries(schema.properties)
        .map(([key, property]) => control(key, property, values[key], key, caps.resolve))
        .filter(Boolean));
      hmacOnly(fields);
    };
    typeSelect.addEventListener('change', draw);
    draw();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const trigger = nameInput.value.trim();
      if (!trigger) {
        showError(form, { field: 'name', message: 'Give the trigger a name.' });
        return;
      }
      save.disabled = true;
      try {
        await api.put(`triggers/${segment(trigger)}`, { type: typeSelect.value, ...read(fields) });
        announce(`Saved trigger ${trigger}`);
        editor.replaceChildren();
        load();
      } catch (failure) {
        showError(form, failure);
      } finally {
        save.disabled = false;
      }
    });
    editor.replaceChildren(form);
    (existing ? fields.querySelector('input, select, textarea') : nameInput).focus();
  }

  load().catch((failure) => list.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, failure.message)));
  return { el };
}

// The verify fields only the `hmac` scheme reads are shown for it alone.
function hmacOnly(fields) {
  const select = fields.querySelector('[data-path="verify.scheme"]');
  if (!select) return;
  const toggle = () => {
    for (const key of ['header', 'algorithm', 'encoding', 'prefix', 'timestamp_header', 'id_header']) {
      const box = fields.querySelector(`[data-for="verify.${key}"]`);
      if (box) box.hidden = select.value !== 'hmac';
    }
  };
  select.addEventListener('change', toggle);
  toggle();
}

