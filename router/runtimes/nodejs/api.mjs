// The client side of the Lambda Runtime API (2018-06-01), over one keep-alive connection.

import http from 'node:http';
import { errorBody } from './errors.mjs';

const BASE = '/2018-06-01/runtime';
const ERROR_TYPE = 'lambda-runtime-function-error-type';
// What Node refuses in a header value; an error's name is the user's and may hold anything.
const HEADER_UNSAFE = /[^\t\x20-\x7e\x80-\xff]/gu;

// The Runtime API is gone or refuses to go on (a 500, a broken connection, a `next` that is not
// a 200): the runtime must exit.
export class RuntimeApiGone extends Error {}

export class RuntimeApi {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    this.port = Number(address.slice(colon + 1));
    // One socket, reused for every call: no connect per invocation.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  // Waits as long as it takes (no timeout: the router holds the call until an event arrives).
  async next() {
    const answer = await this.#request('GET', `${BASE}/invocation/next`);
    if (answer.status !== 200) throw refused('GET invocation/next', answer);
    return answer;
  }

  respond(requestId, json) {
    return this.#post(`${BASE}/invocation/${encodeURIComponent(requestId)}/response`, json);
  }

  reportError(requestId, error) {
    return this.#postError(`${BASE}/invocation/${encodeURIComponent(requestId)}/error`, error);
  }

  reportInitError(error) {
    return this.#postError(`${BASE}/init/error`, error);
  }

  #postError(path, error) {
    const body = errorBody(error);
    const type = String(body.errorType).replace(HEADER_UNSAFE, escapeChar);
    return this.#post(path, JSON.stringify(body), type);
  }

  // A 4xx (an answer too large, an invocation that is no longer ours) is the router's verdict
  // on this answer only: say so and go on. A 500 or a lost connection ends the runtime.
  async #post(path, json, errorType) {
    const answer = await this.#request('POST', path, json, errorType);
    if (answer.status >= 500) throw refused(`POST ${path}`, answer);
    if (answer.status >= 300) {
      process.stderr.write(`Runtime API answered ${answer.status} to POST ${path}: ${answer.body}\n`);
    }
  }

  #request(method, path, json, errorType, retry = true) {
    const headers = json === undefined ? undefined : {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(json),
    };
    if (errorType !== undefined) headers[ERROR_TYPE] = errorType;
    const options = { host: this.host, port: this.port, method, path, headers, agent: this.agent };
    return new Promise((resolve, reject) => {
      const request = http.request(options, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body }));
        response.on('error', (error) => reject(new RuntimeApiGone(error.message)));
      });
      request.on('error', (error) => {
        // The router may close a connection that sat idle through a long invocation just as
        // it is reused: that request never reached it, so it is sent once more.
        if (retry && request.reusedSocket && error.code === 'ECONNRESET') {
          resolve(this.#request(method, path, json, errorType, false));
        } else {
          reject(new RuntimeApiGone(`${method} ${path}: ${error.message}`));
        }
      });
      request.end(json);
    });
  }
}

function refused(what, answer) {
  return new RuntimeApiGone(`${what} answered ${answer.status}: ${answer.body}`);
}

function escapeChar(char) {
  try {
    return encodeURIComponent(char);
  } catch {
    return '%EF%BF%BD'; // a lone surrogate: the replacement character
  }
}
