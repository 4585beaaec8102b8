// The bench's Node.js function: as little as a handler can do, so what is measured is the
// platform (the runtime client, the Runtime API, the router), as `noop` does for Python.
exports.handler = async (event, context) => ({ ok: true });
