// Wording shared by every one-line error message: config, projection modules, YAML projections.
// A leaf module, importable from anywhere.

/** How `describeValue` words a value for its reader. */
export interface DescribeStyle {
  /** Strings longer than this are cut, ending in `…`. @defaultValue 40 */
  maxLength?: number;
  /**
   * Call every object that is not a list "a mapping", as a YAML file does, rather than
   * "an object" or "an instance of …", as JavaScript does.
   */
  mappings?: boolean;
}

/** A short, quoted rendering of a wrong value for messages: `"1"`, `1.5`, `a list`, `an object`. */
export function describeValue(value: unknown, style: DescribeStyle = {}): string {
  const { maxLength = 40, mappings = false } = style;
  if (typeof value === 'string') {
    return JSON.stringify(value.length > maxLength ? `${value.slice(0, maxLength)}…` : value);
  }
  if (Array.isArray(value)) return 'a list';
  if (mappings) return typeof value === 'object' && value !== null ? 'a mapping' : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null
    ? 'an object'
    : `an instance of ${value.constructor?.name ?? 'an unknown class'}`;
}

/** The first line of a (library's) error message, trimmed: messages here are one line. */
export function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim();
}

/**
 * Edits (insert, delete, substitute, and unless `swaps` is false, swap two neighbours) that
 * turn `a` into `b`.
 */
export function editDistance(a: string, b: string, { swaps = true }: { swaps?: boolean } = {}): number {
  // rows[i][j]: edits between the first i characters of a and the first j of b. Row 0 and
  // column 0 are distances to the empty string; the other cells are filled below.
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : i)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (swaps && i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(a.length, b.length);
}

/** The ` (did you mean '…'?)` hint that follows an unknown key, or `''` without a suggestion. */
export function didYouMean(suggestion: string | undefined): string {
  return suggestion === undefined ? '' : ` (did you mean '${suggestion}'?)`;
}
