// The admin API client. The token lives in this tab's sessionStorage only (gone when the tab
// closes), goes out as the bearer header and nowhere else: never a cookie (credentials are
// omitted from every request), never a URL.

const KEY = 'trigger-router.admin-token';
// Relative to the page, so a router behind a path prefix works too: /x/console/ -> /x/api/v1/.
export const API = new URL('../api/v1/', window.location.href);
export const ROOT = new URL('../', window.location.href);

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.clear(),
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body && typeof body.error === 'string' ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.field = body ? body.field : undefined;
    this.details = body && Array.isArray(body.details) ? body.details : [];
  }
}

// 401 anywhere means the token is no longer good: the app returns to the sign-in page.
export const events = new EventTarget();

export function url(path, query) {
  const target = new URL(path.replace(/^\//, ''), API);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') target.searchParams.set(key, value);
  }
  return target;
}

export function segment(name) {
  return encodeURIComponent(name);
}

export async function request(method, path, options = {}) {
  const { json, body, query, headers = {}, token = session.token(), raw = false } = options;
  const init = {
    method,
    headers: { Authorization: `Bearer ${token}`, ...headers },
    credentials: 'omit',
    cache: 'no-store',
    redirect: 'error',
  };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (error) {
    throw new ApiError(0, { error: `the router did not answer (${error.message})` });
  }
  if (response.status === 401 && options.token === undefined) {
    events.dispatchEvent(new Event('unauthorized'));
  }
  if (!response.ok) {
    let payload = null;
    try { payload = await response.json(); } catch { /* not JSON: HTTP status only */ }
    throw new ApiError(response.status, payload);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path, query) => request('GET', path, { query }),
  put: (path, json) => request('PUT', path, { json }),
  patch: (path, json) => request('PATCH', path, { json }),
  post: (path, json, query) => request('POST', path, { json, query }),
  del: (path) => request('DELETE', path),
};

// The OpenAPI document, once per page load: it says what this router's API can do, so tabs for
// what it cannot (versions and aliases on an older router) are hidden rather than broken.
let openapi = null;
export async function capabilities() {
  if (!openapi) openapi = request('GET', 'openapi.json').catch((error) => { openapi = null; throw error; });
  const doc = await openapi;
  const schemas = (doc.components && doc.components.schemas) || {};
  return {
    doc,
    has: (path, method = 'get') => Boolean(doc.paths[path] && doc.paths[path][method]),
    schema: (name) => schemas[name],
    resolve: (schema) => resolve(schemas, schema),
    triggerTypes: () => {
      const union = schemas.Trigger || {};
      const mapping = (union.discriminator && union.discriminator.mapping) || {};
      return Object.entries(mapping).map(([type, ref]) => ({ type, schema: resolve(schemas, { $ref: ref }) }));
    },
  };
}

export function resolve(schemas, schema) {
  let current = schema;
  while (current && current.$ref) {
    const name = current.$ref.split('/').pop();
    const { $ref, ...rest } = current;
    current = { ...schemas[name], ...rest };
  }
  return current;
}

// Invoke, answered with the HTTP status and headers too (an error is a result to show).
export async function invoke(name, event, mode = 'sync') {
  const response = await fetch(url(`functions/${segment(name)}/invoke`, mode === 'async' ? { mode } : {}), {
    method: 'POST',
    headers: { Authorization: `Bearer ${session.token()}`, 'Content-Type': 'application/json' },
    body: event,
    credentials: 'omit',
    cache: 'no-store',
  });
  if (response.status === 401) events.dispatchEvent(new Event('unauthorized'));
  const text = await response.text();
  let payload = text;
  let json = false;
  try { payload = JSON.parse(text); json = true; } catch { /* shown as text */ }
  return {
    status: response.status,
    ok: response.ok,
    requestId: response.headers.get('X-Request-Id'),
    functionError: response.headers.get('X-Amz-Function-Error'),
    version: response.headers.get('X-Amz-Executed-Version'),
    payload,
    json,
  };
}

// The router's own Prometheus text (not under /api/v1); the bearer header goes along in case
// an operator has put /metrics behind the same token.
export async function metricsText() {
  const response = await fetch(new URL('metrics', ROOT), {
    headers: { Authorization: `Bearer ${session.token()}` },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) throw new ApiError(response.status, null);
  return response.text();
}
