// The quick start's commands, as `npm start` prints them and the README shows them (a test
// checks that the README's match these, and runs the README's).

/** `value` as one shell word: as it is when that is safe, else in single quotes. */
export function shellWord(value) {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The lines to paste into a terminal in the projd folder: set DATABASE_URL (left out when
 * `databaseUrl` is null: the user's own, already set), append two events, look at the read
 * model, then the projections' status, and a replay.
 */
export function quickStartCommands(databaseUrl) {
  return [
    ...(databaseUrl === null ? [] : [`export DATABASE_URL=${shellWord(databaseUrl)}`]),
    `npx projd append account-1 account.opened '{"owner": "Ada"}'`,
    `npx projd append account-1 account.credited '{"amount": 100}' --expected-version 1`,
    `npx projd query 'select * from balances'`,
    'npx projd status',
    'npx projd replay balances',
  ];
}
