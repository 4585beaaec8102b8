// A .js file under a package.json with "type": "module": an ES module.
export const handler = async (event) => ({ event, esm: typeof require === 'undefined' });
