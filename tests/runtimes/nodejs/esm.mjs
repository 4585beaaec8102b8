// An ES module with top-level await: the init waits for it.
const ready = await new Promise((resolve) => setTimeout(() => resolve(true), 5));

export const handler = async (event) => ({ event, esm: typeof require === 'undefined', ready });
