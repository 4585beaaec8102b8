// console.* in Lambda's log format, tagged with the request id of the invocation in flight.
//
// Text (the default): `<ISO time>\t<request id>\t<LEVEL>\t<message>`, one line per call: a
// message's own newlines become carriage returns so that a stack trace stays one log entry.
// AWS_LAMBDA_LOG_FORMAT=JSON writes one JSON object per call instead, and AWS_LAMBDA_LOG_LEVEL
// drops the levels below it. Every level goes to stdout, as on Lambda, so the order of lines
// is the order of the calls.

import { format } from 'node:util';

const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
const METHODS = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', log: 'INFO', warn: 'WARN',
  error: 'ERROR', fatal: 'FATAL' };

let requestId; // undefined outside an invocation, printed as such (as Lambda prints it)

export function setRequestId(id) {
  requestId = id;
}

export function patchConsole(env) {
  const write = env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === 'JSON' ? writeJson : writeText;
  const lowest = Math.max(0, LEVELS.indexOf(env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase()));
  for (const [method, level] of Object.entries(METHODS)) {
    console[method] = LEVELS.indexOf(level) >= lowest
      ? (...args) => write(level, args)
      : () => {};
  }
}

function writeText(level, args) {
  const message = format(...args).replace(/\n/g, '\r');
  process.stdout.write(`${new Date().toISOString()}\t${requestId}\t${level}\t${message}\n`);
}

function writeJson(level, args) {
  const line = { timestamp: new Date().toISOString(), level, requestId };
  const error = args.find((arg) => arg instanceof Error);
  line.message = args.length === 1 && !error ? args[0] : format(...args);
  if (error) {
    line.errorType = error.name;
    line.errorMessage = error.message;
    line.stackTrace = typeof error.stack === 'string' ? error.stack.split('\n') : [];
  }
  let text;
  try {
    text = JSON.stringify(line);
  } catch {
    line.message = format(line.message); // a circular object: its inspected form
    text = JSON.stringify(line);
  }
  process.stdout.write(text + '\n'); // JSON escapes newlines itself
}
