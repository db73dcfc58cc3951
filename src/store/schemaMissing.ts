import { UserError } from '../errors.js';

/** SQLSTATEs that mean projd's tables are missing or older than this code. */
const SCHEMA_MISSING_CODES = new Set([
  '3F000', // invalid_schema_name
  '42P01', // undefined_table
  '42703', // undefined_column
  '42883', // undefined_function
]);

/**
 * A query on projd's tables failed: when because they are missing or out of date, a user
 * error that says to migrate (exit 2, one line), else the error as it is.
 */
export function schemaMissingError(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  if (code === undefined || !SCHEMA_MISSING_CODES.has(code)) return error;
  return new UserError("projd's tables are missing or out of date in this database: run `projd migrate`", { cause: error });
}
