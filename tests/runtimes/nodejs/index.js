// CommonJS handlers for tests/test_node_runtime.py (no "type" in package.json: .js is CommonJS).
'use strict';

console.log('loading index.js');

let calls = 0;

exports.echo = async (event) => ({ event, commonjs: typeof require === 'function' });

exports.counter = async () => ++calls;

exports.callback = (event, context, callback) => {
  callback(null, { event, via: 'callback' });
};

exports.context = async (event, context) => ({
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity ?? null,
  clientContext: context.clientContext ?? null,
  remaining: context.getRemainingTimeInMillis(),
  callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
  traceId: process.env._X_AMZN_TRACE_ID ?? null,
});

exports.fail = async () => {
  throw new TypeError('bad input');
};

exports.callbackError = (event, context, callback) => {
  callback(new RangeError('callback failed'));
};

exports.throwString = async () => {
  throw 'plain string';
};

exports.syncThrow = () => {
  throw new Error('thrown before returning');
};

class Oddly extends Error {}
Oddly.prototype.name = 'Odd\nName\u2603';
exports.oddName = async () => {
  throw new Oddly('an error whose name no header may carry');
};

exports.circular = async () => {
  const result = { name: 'loop' };
  result.self = result;
  return result;
};

exports.undefinedResult = async () => undefined;

exports.logs = async (event) => {
  console.log('hello %s', event.name);
  console.info('info', { n: 1 });
  console.warn('careful');
  console.error('bad\nthings');
  console.debug('details');
  return 'logged';
};

exports.succeed = (event, context) => {
  context.succeed({ via: 'succeed' });
};

exports.contextFail = (event, context) => {
  context.fail(new Error('failed via context'));
};

exports.done = (event, context) => {
  context.done(null, { via: 'done' });
};

// A callback answered after the handler returned a value: the callback's result counts.
exports.lateCallback = (event, context, callback) => {
  setTimeout(() => callback(null, 'from the callback'), 10);
  return 'returned, ignored';
};

// Without a callback call, a non-async handler's return value is not the answer (as on Lambda).
exports.syncReturn = () => 'returned, ignored';

// The first of several answers counts.
exports.twice = (event, context, callback) => {
  callback(null, 'first');
  callback(null, 'second');
  context.succeed('third');
};

// By default the callback's answer waits until the event loop is empty: the timer's change is
// in it. With callbackWaitsForEmptyEventLoop = false it goes at once, without the change.
exports.waits = (event, context, callback) => {
  const result = { late: false };
  callback(null, result);
  setTimeout(() => {
    result.late = true;
  }, 20);
};

exports.noWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  const result = { late: false };
  callback(null, result);
  setTimeout(() => {
    result.late = true;
  }, 20);
};

exports.neverSettles = async () => new Promise(() => {});

exports.uncaught = (event, context, callback) => {
  setTimeout(() => {
    throw new Error('thrown from a timer');
  }, 0);
};

exports.unhandled = async () => {
  Promise.reject(new Error('nobody caught me'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return 'too late';
};

exports.notAFunction = 42;

exports.throwSymbol = async () => {
  throw Symbol('odd');
};
