'use strict';

exports.handler = async (event) => ({ event, commonjs: typeof require === 'function' });
