'use strict';

throw new Error('boom at import');
