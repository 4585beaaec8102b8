export const handler = async (event) => ({ style: "esm", event });
