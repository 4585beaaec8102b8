'use strict';

exports.handler = async () => 'folder/index.js';
