// The console's shell: sign-in, navigation, and the hash routes (#/functions/echo/test), so
// that nothing but a page name is ever in the URL.

import { events, request, session } from './api.js';
import { announce, field, h } from './dom.js';
import { sampler } from './metrics.js';
import * as functions from './views/functions.js';
import * as fn from './views/function.js';
import * as create from './views/create.js';
import * as invocations from './views/invocations.js';
import * as deadLetters from './views/deadletters.js';
import * as usage from './views/usage.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
let current = null;

const routes = [
  [/^functions$/, () => functions.render()],
  [/^functions\/new$/, () => create.render()],
  [/^functions\/([^/]+)(?:\/([a-z-]+))?$/, (m) => fn.render(decodeURIComponent(m[1]), m[2] || 'configuration')],
  [/^invocations(?:\/(.+))?$/, (m) => invocations.render(m[1] ? decodeURIComponent(m[1]) : '')],
  [/^dead-letters$/, () => deadLetters.render()],
  [/^usage$/, () => usage.render()],
];

function show(view, focus = true) {
  if (current && current.dispose) current.dispose();
  current = view;
  main.replaceChildren(view.el);
  const heading = main.querySelector('h1');
  document.title = `${heading ? heading.textContent : 'Console'} · trigger-router`;
  if (focus && heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

// The first page of a load leaves the focus where the browser puts it (the top); later pages
// move it to their heading, so that a screen reader says where a link led.
let first = true;

function route() {
  const focus = !first;
  first = false;
  if (!session.token()) {
    top.hidden = true;
    show(signIn(), focus);
    return;
  }
  top.hidden = false;
  const path = window.location.hash.replace(/^#\/?/, '') || 'functions';
  const section = path.split('/')[0];
  top.querySelectorAll('nav a').forEach((link) => {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  });
  for (const [pattern, render] of routes) {
    const match = pattern.exec(path);
    if (match) {
      show(render(match), focus);
      return;
    }
  }
  show({ el: h('section', {}, h('h1', {}, 'Not found'), h('p', {}, 'No such page. '), h('a', { href: '#/functions' }, 'Functions')) });
}

function signIn(reason) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'form-error', role: 'alert' }, reason || '');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin card', novalidate: true, method: 'post' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'The console speaks to this router\'s admin API with its admin token. It is kept in this tab only, until the tab is closed or you sign out.'),
    field('Admin token', input, 'ROUTER_ADMIN_TOKEN, or the token the router generated into ~/.config/trigger-router/admin-token'),
    error,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    error.textContent = '';
    if (!token) {
      error.textContent = 'Enter the admin token.';
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await request('GET', 'functions', { token });
      session.signIn(token);
      sampler.start();
      route();
    } catch (failure) {
      error.textContent = failure.status === 401
        ? 'That token was refused: check it and try again.'
        : `The router could not check it: ${failure.message}`;
      input.select();
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return { el: h('section', { class: 'signin-page' }, form) };
}

function signOut(reason) {
  sampler.stop();
  session.signOut();
  top.hidden = true;
  show(signIn(reason));
}

document.getElementById('sign-out').addEventListener('click', () => {
  signOut();
  announce('Signed out');
});
events.addEventListener('unauthorized', () => {
  if (session.token()) signOut('The router refused the token (it may have changed): sign in again.');
});
window.addEventListener('hashchange', route);
if (session.token()) sampler.start();
route();
