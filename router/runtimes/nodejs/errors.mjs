// Errors the runtime names itself, and the shape every error takes on the Runtime API.

import { types } from 'node:util';

// An error the runtime raises on the user's behalf: `Runtime.<kind>`, as Lambda names them.
// The trace is the cause's when there is one (where the user's code failed says more than
// where the runtime noticed; for a syntax error, the file and line).
export class RuntimeError extends Error {
  constructor(kind, message, cause) {
    super(message);
    Object.defineProperty(this, 'name', { value: `Runtime.${kind}`, configurable: true });
    const trace = causeTrace(cause);
    if (trace !== '') this.stack = `${this.name}: ${message}\n${trace}`;
  }
}

export function importModuleError(cause) {
  const kind = cause instanceof SyntaxError ? 'UserCodeSyntaxError' : 'ImportModuleError';
  return new RuntimeError(kind, String(cause), cause);
}

export function unhandledRejection(reason) {
  return new RuntimeError('UnhandledPromiseRejection', String(reason), reason);
}

// An async handler whose promise never settled and left nothing else to run.
export function nodeJsExit() {
  return new RuntimeError(
    'NodeJsExit',
    'The runtime detected an unexpected Node.js exit: the handler returned a promise that ' +
      'never settled and nothing else was left to run.',
  );
}

// The handler's module never finished loading and nothing else was left to run.
export function initNeverFinished() {
  return new RuntimeError(
    'NodeJsExit',
    "The runtime detected an unexpected Node.js exit: the handler's module awaits a promise " +
      'that never settles.',
  );
}

// Lambda's body for /error and /init/error. An Error (or an object shaped like one) gives its
// name, message and stack lines; anything else thrown or passed to a callback gives its type
// and its string form, with no trace (`throw "boom"` answers errorType "string").
export function errorBody(error) {
  try {
    if (types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    // A getter that throws, or an object whose toString does.
    return {
      errorType: 'handled',
      errorMessage:
        'an error was reported, but reading its name, message or stack failed',
      trace: [],
    };
  }
}

// How an error is logged next to "Invoke Error": its JSON with the non-enumerable fields of an
// Error made visible, after a tab (the text Lambda's own runtime prints). Anything else thrown
// is logged as its error body.
export function errorLogText(error) {
  try {
    if (error instanceof Error) {
      return '\t' + JSON.stringify(error, (_key, value) => withErrorFields(value));
    }
  } catch {
    // a circular or BigInt field: the body below
  }
  return '\t' + JSON.stringify(errorBody(error));
}

function withErrorFields(value) {
  if (!(value instanceof Error)) return value;
  const fields = { errorType: value.name, errorMessage: value.message, code: value.code };
  Object.assign(fields, value);
  if (typeof value.stack === 'string') fields.stack = value.stack.split('\n');
  return fields;
}

function isErrorLike(value) {
  return (
    typeof value?.name === 'string' &&
    typeof value.message === 'string' &&
    typeof value.stack === 'string' &&
    value.name !== '' &&
    value.message !== '' &&
    value.stack !== ''
  );
}

// The lines of a cause's stack but its own `Name: message`, which the wrapper's message
// repeats: the frames, and for a syntax error the file, line and code before them.
function causeTrace(cause) {
  const stack = cause?.stack;
  if (typeof stack !== 'string') return '';
  const header = String(cause);
  const at = stack.indexOf(header);
  const rest = at === -1 ? stack : stack.slice(0, at) + stack.slice(at + header.length);
  return rest
    .split('\n')
    .filter((line) => line.trim() !== '')
    .join('\n');
}
