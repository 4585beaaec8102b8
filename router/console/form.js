// Forms drawn from the API's own JSON Schema (its OpenAPI document), so every field the API
// takes is there with its default and description, and a field the API adds later appears by
// itself. Values are checked by the API, not here: its message is shown beside the field it
// names, word for word, as the CLI and curl would see it.

import { h, uid, clear } from './dom.js';

const REDACTED = '<redacted>';

const NAMES = { env: 'Environment variables', id_header: 'Id header', rate_limit: 'Rate limit' };

// "max_event_age_s" -> "Max event age (s)": the API's own field names, readable.
function title(name) {
  if (NAMES[name]) return NAMES[name];
  const unit = { s: ' (s)', mb: ' (MB)', bytes: ' (bytes)' }[name.split('_').pop()] || '';
  const words = unit ? name.split('_').slice(0, -1) : name.split('_');
  const text = words.join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1) + unit;
}

function nullable(schema) {
  if (!schema.anyOf) return { schema, nullable: false };
  const other = schema.anyOf.find((option) => option.type !== 'null');
  const { anyOf, ...rest } = schema;
  return { schema: { ...other, ...rest }, nullable: schema.anyOf.some((o) => o.type === 'null') };
}

// One control (or a fieldset of them) for `schema` at dotted `path`.
export function control(name, rawSchema, value, path, resolve) {
  const { schema: unresolved, nullable: canBeNull } = nullable(resolve(rawSchema));
  const schema = resolve(unresolved);
  const id = uid('f');
  const label = title(name);
  const hint = schema.description ? h('small', { class: 'hint', id: `${id}-hint` }, schema.description) : null;
  const described = hint ? `${id}-hint` : undefined;
  const current = value === undefined ? schema.default : value;
  const wrap = (input, kind) => {
    input.id = id;
    input.dataset.path = path;
    input.dataset.kind = kind;
    if (canBeNull) input.dataset.nullable = 'true';
    if (described) input.setAttribute('aria-describedby', described);
    return h('div', { class: `field field-${kind}`, dataset: { for: path } },
      h('label', { for: id }, label), input, hint, h('p', { class: 'field-error', id: `${id}-error`, role: 'alert' }));
  };

  if (schema.const !== undefined) return null;
  if (schema.type === 'object' && schema.properties && !canBeNull) {
    const set = h('fieldset', { class: 'group', dataset: { for: path } },
      h('legend', {}, label), hint, h('p', { class: 'field-error', role: 'alert' }));
    for (const [key, child] of Object.entries(schema.properties)) {
      const nested = control(key, child, current ? current[key] : undefined, `${path}.${key}`, resolve);
      if (nested) set.append(nested);
    }
    return set;
  }
  if (schema.type === 'object' && schema.additionalProperties && schema.additionalProperties.type === 'string') {
    const lines = Object.entries(current || {}).map(([k, v]) => `${k}=${v}`).join('\n');
    const area = h('textarea', { rows: 3, spellcheck: 'false', class: 'code', placeholder: 'NAME=value, one a line' }, lines);
    const field = wrap(area, 'pairs');
    field.querySelector('small')?.append(` Values are write-only: ${REDACTED} keeps the stored one.`);
    if (!hint) field.append(h('small', { class: 'hint' }, `NAME=value, one a line. ${REDACTED} keeps the stored value.`));
    return field;
  }
  if (schema.type === 'object' || (schema.type === undefined && schema.properties)) {
    const text = current === null || current === undefined ? '' : JSON.stringify(current, null, 2);
    return wrap(h('textarea', { rows: 3, spellcheck: 'false', class: 'code', placeholder: canBeNull ? 'none' : '{}' }, text), 'json');
  }
  if (schema.type === 'array' && schema.items && resolve(schema.items).enum) {
    const options = resolve(schema.items).enum;
    const chosen = new Set(current || []);
    const set = h('fieldset', { class: 'group checks', dataset: { for: path, path, kind: 'choices' } },
      h('legend', {}, label), hint,
      options.map((option) => {
        const box = h('input', { type: 'checkbox', value: option, checked: chosen.has(option), id: uid('c') });
        return h('label', { class: 'check', for: box.id }, box, ` ${option}`);
      }),
      h('p', { class: 'field-error', role: 'alert' }));
    return set;
  }
  if (schema.type === 'array') {
    const area = h('textarea', { rows: 2, spellcheck: 'false', class: 'code', placeholder: 'one a line' }, (current || []).join('\n'));
    return wrap(area, 'lines');
  }
  if (schema.type === 'boolean') {
    const box = h('input', { type: 'checkbox', checked: Boolean(current) });
    box.id = id;
    box.dataset.path = path;
    box.dataset.kind = 'boolean';
    if (described) box.setAttribute('aria-describedby', described);
    return h('div', { class: 'field field-boolean', dataset: { for: path } },
      h('label', { for: id, class: 'check' }, box, ` ${label}`), hint, h('p', { class: 'field-error', role: 'alert' }));
  }
  if (schema.enum) {
    // A required choice without a default starts unchosen: the API insists it be said
    // (a webhook's verify scheme, "none" included), and so does the form.
    const unchosen = current === undefined || current === null;
    const select = h('select', {},
      canBeNull || unchosen ? h('option', { value: '' }, canBeNull ? '(none)' : '(choose)') : null,
      schema.enum.map((option) => h('option', { value: option, selected: option === current }, option)));
    return wrap(select, 'string');
  }
  if (schema.type === 'integer' || schema.type === 'number') {
    const input = h('input', { type: 'text', inputmode: 'decimal', value: current ?? '', autocomplete: 'off' });
    return wrap(input, 'number');
  }
  const long = (schema.maxLength || 0) > 200;
  const input = long
    ? h('textarea', { rows: 2 }, current ?? '')
    : h('input', { type: 'text', value: current ?? '', autocomplete: 'off', spellcheck: 'false' });
  return wrap(input, long ? 'text' : 'string');
}

function set(target, path, value) {
  const parts = path.split('.');
  let node = target;
  parts.slice(0, -1).forEach((part) => { node[part] = node[part] ?? {}; node = node[part]; });
  node[parts[parts.length - 1]] = value;
}

// The form's values as JSON; text the API must judge (a number that is not one, JSON that does
// not parse) is sent as it is typed, so the API's own message names the field.
export function read(form, prefix) {
  const out = {};
  for (const el of form.querySelectorAll('[data-path]')) {
    const { path, kind } = el.dataset;
    if (prefix && !path.startsWith(`${prefix}.`)) continue;
    const key = prefix ? path.slice(prefix.length + 1) : path;
    const text = el.value;
    let value;
    if (kind === 'boolean') value = el.checked;
    else if (kind === 'choices') value = [...el.querySelectorAll('input:checked')].map((box) => box.value);
    else if (kind === 'lines') value = text.split('\n').map((line) => line.trim()).filter(Boolean);
    else if (kind === 'pairs') value = pairs(text);
    else if (kind === 'json') value = text.trim() ? json(text) : null;
    else if (kind === 'number') value = text.trim() === '' ? null : (Number.isFinite(Number(text)) ? Number(text) : text);
    else value = text;
    if (kind === 'choices' && value.length === 0) continue; // none chosen: the API's default
    if ((value === null || value === '') && el.dataset.nullable) value = null;
    if (value === null && !el.dataset.nullable && kind !== 'json') continue; // left to its default
    set(out, key, value);
  }
  return out;
}

function json(text) {
  try { return JSON.parse(text); } catch { return text; }
}

function pairs(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf('=');
    if (at < 0) out[line.trim()] = '';
    else out[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return out;
}

// The API's error beside the field it names (or the nearest enclosing one), else atop the form.
export function showError(form, error, prefix) {
  clearErrors(form);
  const fieldName = error.field && prefix ? `${prefix}.${error.field}` : error.field;
  let target = null;
  if (fieldName) {
    const parts = fieldName.split('.');
    while (parts.length && !target) {
      target = form.querySelector(`[data-for="${CSS.escape(parts.join('.'))}"]`);
      parts.pop();
    }
  }
  const slot = target ? target.querySelector('.field-error') : form.querySelector('.form-error');
  const box = slot || form.querySelector('.form-error');
  if (box) box.textContent = error.message;
  if (target) {
    target.classList.add('invalid');
    const input = target.querySelector('[data-path], input, select, textarea');
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error, .form-error').forEach((el) => clear(el));
  form.querySelectorAll('.invalid').forEach((el) => el.classList.remove('invalid'));
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
}

export function formError() {
  return h('p', { class: 'form-error', role: 'alert' });
}
