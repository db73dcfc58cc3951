import { UserError } from '../errors.js';

/** Environment variables as `process.env` holds them. */
export type Env = Readonly<Record<string, string | undefined>>;

// `$${` first, so an escaped `${` is never read as a reference. A reference ends at the
// first `}`, so a default cannot contain `}`.
const REFERENCE = /\$\$\{|\$\{([^}]*)(\}?)/g;
const BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in one string value with values from `env`;
 * `$${` stands for a literal `${`. As in the shell, the default applies when the variable
 * is unset or empty. Meant for the string scalars of an already parsed YAML tree, so a
 * value cannot change the structure of the file.
 *
 * Throws a `UserError` prefixed by `where` (e.g. `projd.yaml: database.url`) when a variable
 * without a default is unset, or a reference is malformed.
 */
export function interpolate(text: string, env: Env, where?: string): string {
  const fail = (problem: string): never => {
    throw new UserError(where === undefined ? problem : `${where}: ${problem}`);
  };
  return text.replace(REFERENCE, (match, body: string | undefined, close: string | undefined) => {
    if (body === undefined) return '${';
    if (close !== '}') return fail(`unterminated '\${' (write '$\${' for a literal '\${')`);
    const parts = BODY.exec(body);
    if (!parts) {
      return fail(`invalid reference '${match}': use \${NAME} or \${NAME:-default}`);
    }
    const [, name, fallback] = parts as unknown as [string, string, string | undefined];
    const value = env[name];
    if (fallback !== undefined) return value === undefined || value === '' ? fallback : value;
    return value ?? fail(`environment variable ${name} is not set`);
  });
}
