// The Node.js runtime client: loads the function's handler and serves its invocations over
// the Lambda Runtime API (2018-06-01), the part Lambda's managed Node.js runtime plays.
//
// Started by the router as `node runtime.mjs` in the unpacked bundle, with Lambda's
// environment: _HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_RUNTIME_API (host:port), and the
// function's AWS_LAMBDA_* names. Node core modules only.

import { RuntimeApi } from './api.mjs';
import { patchConsole } from './console.mjs';
import { errorLogText, initNeverFinished, unhandledRejection } from './errors.mjs';
import { Invocation } from './invocation.mjs';
import { loadHandler } from './loader.mjs';

const env = process.env;
const api = new RuntimeApi(env.AWS_LAMBDA_RUNTIME_API ?? '127.0.0.1:9001');
let initialized = false; // the first GET next has been sent
let current; // the invocation in flight, until its answer is posted
let crashing = false;

patchConsole(env);
process.on('uncaughtException', (error) => crash(error, 'Uncaught Exception', 129));
process.on('unhandledRejection', (reason) =>
  crash(unhandledRejection(reason), 'Unhandled Promise Rejection', 128),
);
process.on('beforeExit', emptyLoop);
serve().catch(gone);

async function serve() {
  const handler = await load();
  const isAsync = handler.constructor?.name === 'AsyncFunction';
  for (;;) {
    initialized = true;
    const next = await api.next();
    if (!next.headers['lambda-runtime-aws-request-id']) {
      throw new Error('GET invocation/next answered without Lambda-Runtime-Aws-Request-Id');
    }
    await new Promise((answered, fatal) => {
      current = new Invocation(api, next, isAsync, answered, fatal);
      current.run(handler);
    });
    current = undefined;
  }
}

// A handler that cannot be loaded fails the init: reported on /init/error, then exit.
async function load() {
  try {
    return await loadHandler(env.LAMBDA_TASK_ROOT ?? process.cwd(), env._HANDLER);
  } catch (error) {
    console.error('Init Error', errorLogText(error));
    await api.reportInitError(error);
    process.exit(1);
  }
}

// An exception nobody caught, or a rejection nobody handled: the invocation in flight (or the
// init) fails with it and the process exits, as on Lambda. Between invocations it is only
// logged before exiting: no invocation is there to carry it.
function crash(error, what, code) {
  console.error(what, errorLogText(error));
  if (crashing) return; // already reporting the first one
  crashing = true;
  let report;
  if (current) report = current.abort(error);
  else if (!initialized) report = api.reportInitError(error);
  const exit = () => process.exit(code);
  Promise.resolve(report).then(exit, exit);
}

// Node found nothing left to run. While an invocation is in flight, that may be its answer;
// before the first one, the handler's module waits on a promise that can never settle (a
// top-level await), and the init fails rather than the process ending in silence.
function emptyLoop() {
  if (current) current.onEmptyLoop();
  else if (!initialized) crash(initNeverFinished(), 'Init Error', 1);
}

// The Runtime API failed (a 500, a refused or broken connection): nothing to answer to.
function gone(error) {
  process.stderr.write(`Runtime API unavailable, exiting: ${error.message}\n`);
  process.exit(1);
}
