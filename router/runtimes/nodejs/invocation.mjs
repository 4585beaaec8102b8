// One invocation: the event and context handed to the handler, and the one answer that goes
// back, however the handler gives it (a returned promise, the callback, context.succeed/fail/
// done, or the event loop running empty).

import { errorLogText, nodeJsExit } from './errors.mjs';
import { setRequestId } from './console.mjs';

const ENV = process.env;
// What the context takes from the environment: the same for every invocation.
const FUNCTION = {
  functionName: ENV.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: ENV.AWS_LAMBDA_FUNCTION_VERSION,
  memoryLimitInMB: ENV.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  logGroupName: ENV.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: ENV.AWS_LAMBDA_LOG_STREAM_NAME,
};

export class Invocation {
  // `next` is the Runtime API's answer to GET next; `onAnswered` runs once the answer is
  // posted; `onFatal` takes an error of the Runtime API itself.
  constructor(api, next, handlerIsAsync, onAnswered, onFatal) {
    this.api = api;
    this.next = next;
    this.headers = next.headers;
    this.id = this.headers['lambda-runtime-aws-request-id'];
    this.handlerIsAsync = handlerIsAsync;
    this.onAnswered = onAnswered;
    this.onFatal = onFatal;
    this.settled = false; // the handler has given its outcome (only the first one counts)
    this.answered = false; // the answer is posted, or being posted
    this.atEmptyLoop = undefined; // an answer waiting for the event loop to run empty
    this.posting = undefined; // the POST of the answer
  }

  run(handler) {
    setRequestId(this.id);
    const trace = this.headers['lambda-runtime-trace-id'];
    if (trace) ENV._X_AMZN_TRACE_ID = trace;
    else if (ENV._X_AMZN_TRACE_ID !== undefined) delete ENV._X_AMZN_TRACE_ID;
    const callback = (error, result) => this.#callback(error, result);
    try {
      const event = JSON.parse(this.next.body);
      this.context = this.#context();
      const result = handler(event, this.context, callback);
      if (typeof result?.then === 'function') {
        result.then((value) => this.#done(null, value), (error) => this.#done(error ?? 'handled'));
      }
    } catch (error) {
      callback(error);
    }
  }

  // The event loop ran empty (Node's 'beforeExit'): a callback answer that waited for it goes
  // now; a handler that never answered gets Lambda's verdict (null for a callback handler, an
  // error for an async one whose promise can no longer settle).
  onEmptyLoop() {
    if (this.answered) return;
    const pending = this.atEmptyLoop;
    this.atEmptyLoop = undefined;
    if (pending) return pending();
    this.settled = true;
    if (this.handlerIsAsync) this.#answerError(nodeJsExit());
    else this.#answerResult(null);
  }

  // An uncaught exception or unhandled rejection while this invocation runs: it is this
  // invocation's error, and the process exits after reporting it (as on Lambda).
  // Resolves once that report, or the answer already under way, is through.
  abort(error) {
    if (!this.answered) {
      this.answered = true;
      this.posting = this.api.reportError(this.id, error);
    }
    return this.posting;
  }

  #context() {
    const headers = this.headers;
    const deadline = Number(headers['lambda-runtime-deadline-ms']);
    return {
      functionName: FUNCTION.functionName,
      functionVersion: FUNCTION.functionVersion,
      memoryLimitInMB: FUNCTION.memoryLimitInMB,
      logGroupName: FUNCTION.logGroupName,
      logStreamName: FUNCTION.logStreamName,
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: this.id,
      identity: parseHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      clientContext: parseHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
      getRemainingTimeInMillis: () => deadline - Date.now(),
      callbackWaitsForEmptyEventLoop: true,
      succeed: (result) => this.#done(null, result),
      fail: (error) => this.#done(error ?? 'handled'),
      done: (error, result) => this.#done(error, result),
    };
  }

  // The callback's success waits for the event loop to run empty unless the handler set
  // context.callbackWaitsForEmptyEventLoop = false (timers and sockets it left finish first).
  #callback(error, result) {
    if (this.settled) return;
    this.settled = true;
    if (error !== undefined && error !== null) return this.#answerError(error);
    if (this.context?.callbackWaitsForEmptyEventLoop === false) return this.#answerResult(result);
    this.atEmptyLoop = () => this.#answerResult(result);
  }

  #done(error, result) {
    if (this.settled) return;
    this.settled = true;
    if (error !== undefined && error !== null) this.#answerError(error);
    else this.#answerResult(result);
  }

  #answerResult(result) {
    let json;
    try {
      json = JSON.stringify(result === undefined ? null : result) ?? 'null';
    } catch (cause) {
      const error = new Error('Unable to stringify response body');
      error.stack = `${error.stack.split('\n')[0]}\n${cause?.stack ?? cause}`;
      return this.#answerError(error);
    }
    this.#send(this.api.respond(this.id, json));
  }

  #answerError(error) {
    console.error('Invoke Error', errorLogText(error));
    this.#send(this.api.reportError(this.id, error));
  }

  #send(posting) {
    this.answered = true;
    this.atEmptyLoop = undefined;
    this.posting = posting;
    posting.then(this.onAnswered, this.onFatal);
  }
}

function parseHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new Error(`Cannot parse ${name} as json: ${error}`);
  }
}
