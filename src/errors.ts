/**
 * Errors the user can fix (a flag, a config key, a projection file, an unreachable
 * database). The CLI prints `message` as one line and exits 2, without a stack.
 *
 * Detected by `code`, not `instanceof`: a projection module may load its own copy of projd.
 */
export const USER_ERROR_CODE = 'PROJD_USER_ERROR';

export class UserError extends Error {
  readonly code = USER_ERROR_CODE;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

export function isUserError(error: unknown): error is UserError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { code?: unknown }).code === USER_ERROR_CODE
  );
}

/** The message of anything thrown, for one-line logs and error texts. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error === undefined) return 'undefined';
  return String(error);
}

/** The `code` of an `OperationalError`. */
export const OPERATIONAL_ERROR_CODE = 'PROJD_OPERATIONAL_ERROR';

/**
 * A failure that is neither a usage error nor a bug in projd, for the user to look at: a
 * projection's SQL that keeps failing, the database going away for good mid-way. The CLI
 * prints `message` as one line and exits 1. Detected by `code`, like `UserError`.
 */
export class OperationalError extends Error {
  readonly code = OPERATIONAL_ERROR_CODE;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OperationalError';
  }
}

export function isOperationalError(error: unknown): error is OperationalError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { code?: unknown }).code === OPERATIONAL_ERROR_CODE
  );
}
