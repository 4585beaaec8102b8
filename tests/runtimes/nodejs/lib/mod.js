'use strict';

exports.plain = async () => 'lib/mod.plain';

exports.nested = {
  fn: async () => 'lib/mod.nested.fn',
};
