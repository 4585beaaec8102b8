// Finding the handler function a `_HANDLER` string names, as Lambda's Node.js runtime does.
//
// `lib/app.handler`: the module `app` in the folder `lib/` of the task root, its export
// `handler`; `app.routes.get`: the export `routes`, its property `get`. The module is the file
// `app` (no extension), `app.js` (CommonJS, or ESM when the nearest package.json says
// "type": "module"), `app.mjs` (ESM) or `app.cjs` (CommonJS), tried in that order, then a
// folder `app` (its package.json's main, or index.js), and failing those a package `app` in
// node_modules.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RuntimeError, importModuleError } from './errors.mjs';

export async function loadHandler(taskRoot, handlerString) {
  const { folder, module, property } = parseHandler(handlerString);
  const exports = await importModule(taskRoot, folder, module);
  const handler = property.split('.').reduce((object, key) => object?.[key], exports);
  if (!handler) {
    throw new RuntimeError('HandlerNotFound', `${handlerString} is undefined or not exported`);
  }
  if (typeof handler !== 'function') {
    throw new RuntimeError('HandlerNotFound', `${handlerString} is not a function`);
  }
  return handler;
}

// `dir/file.fn.inner` -> folder `dir/`, module `file`, property `fn.inner`.
export function parseHandler(handlerString) {
  if (typeof handlerString !== 'string' || handlerString === '') {
    throw new RuntimeError('MalformedHandlerName', 'No handler specified (_HANDLER is empty)');
  }
  if (handlerString.includes('..')) {
    throw new RuntimeError(
      'MalformedHandlerName',
      `'${handlerString}' is not a valid handler name: '..' may not appear in it.`,
    );
  }
  const slash = handlerString.lastIndexOf('/');
  const name = handlerString.slice(slash + 1);
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) {
    throw new RuntimeError(
      'MalformedHandlerName',
      `Bad handler '${handlerString}': expected 'file.function' (e.g. index.handler)`,
    );
  }
  return {
    folder: handlerString.slice(0, slash + 1),
    module: name.slice(0, dot),
    property: name.slice(dot + 1),
  };
}

async function importModule(taskRoot, folder, module) {
  const base = path.resolve(taskRoot, folder, module);
  const require = createRequire(import.meta.url); // absolute paths, or `paths` given
  try {
    if (isFile(base)) return require(base);
    if (isFile(base + '.js')) {
      return isEsmFolder(path.dirname(base)) ? await esmImport(base + '.js') : require(base + '.js');
    }
    if (isFile(base + '.mjs')) return await esmImport(base + '.mjs');
    if (isFile(base + '.cjs')) return require(base + '.cjs');
    if (existsSync(base)) return require(base); // a folder: its package.json main or index.js
    return require(require.resolve(module, { paths: [taskRoot, path.resolve(taskRoot, folder)] }));
  } catch (error) {
    throw importModuleError(error);
  }
}

function isFile(file) {
  return statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;
}

function esmImport(file) {
  return import(pathToFileURL(file).href);
}

// Whether `.js` files here are ES modules: the nearest package.json's "type", looking up from
// the folder until a node_modules folder or the file system's root.
function isEsmFolder(folder) {
  for (let dir = folder; ; dir = path.dirname(dir)) {
    if (path.basename(dir) === 'node_modules') return false;
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) return readType(manifest) === 'module';
    if (path.dirname(dir) === dir) return false;
  }
}

function readType(manifest) {
  try {
    return JSON.parse(readFileSync(manifest, 'utf8'))?.type;
  } catch (error) {
    console.warn(`${manifest} cannot be read; .js files next to it are taken as CommonJS.`, error);
    return undefined;
  }
}
