// DOM helpers. Text always goes in as text nodes, never as HTML: whatever a function, an event
// or an error message holds is shown, not run.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value') el.value = value;
    else if (key === 'checked' || key === 'disabled' || key === 'hidden' || key === 'selected') {
      el[key] = Boolean(value);
    } else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let ids = 0;
export function uid(prefix = 'id') {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled control: <label for> ties the label to the control for screen readers and clicks.
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const hintEl = hint ? h('small', { class: 'hint', id: uid('hint') }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

export function button(label, onclick, props = {}) {
  return h('button', { type: 'button', ...props, onclick }, label);
}

// The polite live region: what an action did, read out without moving focus.
export function announce(message, kind = 'ok') {
  const region = document.getElementById('status');
  if (!region) return;
  region.className = `status ${kind}`;
  region.textContent = message;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { region.textContent = ''; region.className = 'status'; }, 6000);
}

// A modal confirmation (<dialog>: focus is trapped, Escape cancels). Resolves true or false.
export function confirmDialog(title, message, confirmLabel = 'Confirm', danger = true) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': uid('dlg') });
    const heading = h('h2', { id: dialog.getAttribute('aria-labelledby') }, title);
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    const cancel = button('Cancel', () => done(false));
    const ok = button(confirmLabel, () => done(true), { class: danger ? 'danger' : 'primary' });
    dialog.append(heading, h('p', {}, message), h('div', { class: 'actions' }, cancel, ok));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

export function when(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  return new Date(seconds * 1000).toLocaleString();
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function number(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  if (seconds < 1) return `${number(seconds * 1000, seconds < 0.01 ? 2 : 1)} ms`;
  return `${number(seconds, 2)} s`;
}

export function bytes(size) {
  if (size === null || size === undefined) return '—';
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${number(size / 1024, 1)} KB`;
  return `${number(size / 1024 / 1024, 1)} MB`;
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// A table inside a scrolling box: wide tables scroll on a phone instead of widening the page.
export function table(caption, headers, rows, props = {}) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', props,
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, rows)));
}

export function copyButton(input, label = 'Copy') {
  return button(label, async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      announce('Copied to the clipboard');
    } catch {
      input.select(); // no clipboard outside a secure context: selected for Ctrl+C
      announce('Selected: press Ctrl+C to copy');
    }
  }, { 'aria-label': `${label} ${input.getAttribute('aria-label') || ''}`.trim() });
}
