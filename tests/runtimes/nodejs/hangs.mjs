// A module whose top-level await can never settle: its init cannot finish.
await new Promise(() => {});

export const handler = async () => 'never loaded';
