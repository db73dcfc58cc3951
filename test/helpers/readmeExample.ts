/**
 * The quick start's appends, as the README shows them: each a one-line INSERT that any client
 * (psql among them) can run against a database where `projd run` is live with the example
 * projections. `test/cli/readmeExample.test.ts` runs exactly these; the README must quote them
 * verbatim.
 */
export const README_EXAMPLE_INSERTS = [
  `insert into projd.events (stream_id, stream_version, type, data) values ('account-1', 1, 'account.opened', '{"owner": "Ada"}')`,
  `insert into projd.events (stream_id, stream_version, type, data) values ('account-1', 2, 'account.credited', '{"amount": 100}')`,
] as const;
