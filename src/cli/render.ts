import type { ReadOnlyQueryResult } from '../operations/queryReadOnly.js';
import type { BlockingTransaction, BuildStatus, PartStatus, ProjectionOwner, ProjectionStatus } from '../status/readStatusReport.js';

const COLUMNS: readonly TableColumn<ProjectionStatus>[] = [
  { title: 'NAME', align: 'left', cell: (status) => status.name },
  { title: 'VERSION', align: 'left', cell: formatVersion },
  { title: 'STATE', align: 'left', cell: (status) => status.state },
  { title: 'POSITION', align: 'right', cell: (status) => status.position },
  { title: 'HEAD', align: 'right', cell: (status) => status.headPosition },
  { title: 'LAG', align: 'right', cell: (status) => status.lagEvents },
  { title: 'LAG TIME', align: 'right', cell: (status) => formatSeconds(status.lagSeconds) },
  { title: 'PARKED', align: 'right', cell: (status) => String(status.failedEvents) },
  { title: 'OWNER', align: 'left', cell: (status) => formatOwner(status.owner) },
  { title: 'NOTE', align: 'left', cell: formatNote },
];

/** The row of one part, under its projection's: what is the projection's alone is left blank. */
const PART_COLUMNS: Readonly<Record<string, (part: PartStatus, status: ProjectionStatus) => string>> = {
  NAME: (part, status) => `  part ${part.part}/${status.parts!.length}`,
  VERSION: () => '',
  STATE: (part) => part.state,
  POSITION: (part) => part.position,
  HEAD: () => '',
  LAG: (part) => part.lagEvents,
  'LAG TIME': (part) => formatSeconds(part.lagSeconds),
  PARKED: () => '',
  OWNER: (part) => formatOwner(part.owner),
  NOTE: (part) => {
    if (part.state === 'failed') return `stopped at failed event ${part.blockedBy ?? '?'}`;
    return part.lastError ? `last error: ${oneLine(part.lastError)}` : '';
  },
};

/** The row of a blue/green build, under its projection's. */
const BUILD_COLUMNS: Readonly<Record<string, (build: BuildStatus) => string>> = {
  NAME: () => '  build',
  VERSION: (build) => String(build.version),
  STATE: (build) => build.state,
  POSITION: (build) => build.position,
  HEAD: () => '',
  LAG: (build) => build.lagEvents,
  'LAG TIME': (build) => formatSeconds(build.lagSeconds),
  PARKED: (build) => String(build.failedEvents),
  OWNER: (build) => formatOwner(build.owner),
  NOTE: (build) => {
    if (build.state === 'failed') return `stopped at failed event ${build.blockedBy ?? '?'}`;
    if (build.lastError) return `last error: ${oneLine(build.lastError)}`;
    return `building in schema ${build.schema}; swapped in once caught up`;
  },
};

type StatusRow = { status: ProjectionStatus; part?: PartStatus; build?: BuildStatus };

const ROW_COLUMNS: readonly TableColumn<StatusRow>[] = COLUMNS.map((column) => ({
  ...column,
  cell: ({ status, part, build }) =>
    build ? BUILD_COLUMNS[column.title]!(build) : part ? PART_COLUMNS[column.title]!(part, status) : column.cell(status),
}));

/**
 * `projd status` as plain text: a header and one aligned row per projection, followed by a
 * row per part for a projection split into parts, and one for a blue/green build under way.
 */
export function renderStatusTable(statuses: readonly ProjectionStatus[]): string {
  const rows = statuses.flatMap((status): StatusRow[] => [
    { status },
    ...(status.parts ?? []).map((part) => ({ status, part })),
    ...(status.build ? [{ status, build: status.build }] : []),
  ]);
  return renderTable(ROW_COLUMNS, rows);
}

function formatVersion(status: ProjectionStatus): string {
  if (status.storedVersion === null || status.storedVersion === status.version) return String(status.version);
  return `${status.version} (stored ${status.storedVersion})`;
}

/**
 * A daemon by its `host:pid` (its connection is named `projd batch …` while a batch runs),
 * anything else by its pid and application name.
 */
export function formatOwner(owner: ProjectionOwner | null): string {
  if (owner === null) return '-';
  const daemon = /^projd (?:daemon|batch) (.+)$/.exec(owner.applicationName ?? '');
  if (daemon) return daemon[1]!;
  return owner.applicationName ? `pid ${owner.pid} (${owner.applicationName})` : `pid ${owner.pid}`;
}

function formatNote(status: ProjectionStatus): string {
  if (status.problem !== null) return status.problem;
  if (status.build) return `version ${status.storedVersion ?? '?'} serves while version ${status.build.version} builds beside it`;
  if (status.rebuildPending && status.storedVersion === status.version) {
    return 'rebuild pending: another number of partitions loaded than the store was set up with; a daemon restart rebuilds it';
  }
  if (status.rebuildPending) {
    return `rebuild pending: version ${status.version} loaded, store at ${status.storedVersion ?? '?'}; a daemon restart rebuilds it`;
  }
  if (status.state === 'failed') {
    const at = `stopped at failed event ${status.blockedBy ?? '?'}`;
    return status.lastError ? `${at}: ${oneLine(status.lastError)}` : at;
  }
  if (status.state === 'stalled') return formatStall(status.stalledBy);
  return status.lastError ? `last error: ${oneLine(status.lastError)}` : '';
}

/** Why a projection is stalled, naming the transaction to look at. */
export function formatStall(by: BlockingTransaction | null): string {
  if (by === null) return 'held back by an open transaction this database role cannot see';
  const age = `open ${formatSeconds(by.transactionAgeSeconds)}`;
  if (by.pid === null) return `held back by ${by.query ?? 'a prepared transaction'} (${age})`;
  const details = [by.state, age, by.applicationName, by.database && `database ${by.database}`].filter(Boolean);
  const query = by.query ? `: ${by.query}` : '';
  return `held back by pid ${by.pid} (${details.join(', ')})${query}`;
}

/** `0s`, `<0.1s`, `2.5s`, `42s`, `5m 3s`, `2h 5m`, `3d 4h`. */
export function formatSeconds(seconds: number): string {
  if (seconds <= 0) return '0s';
  if (seconds < 0.1) return '<0.1s';
  if (seconds < 10) return `${Number(seconds.toFixed(1))}s`;
  const whole = Math.floor(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m ${whole % 60}s`;
  if (whole < 86_400) return `${Math.floor(whole / 3600)}h ${Math.floor((whole % 3600) / 60)}m`;
  return `${Math.floor(whole / 86_400)}d ${Math.floor((whole % 86_400) / 3600)}h`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** A column of a plain-text table: its title, alignment, and how a row shows in it. */
export interface TableColumn<T> {
  title: string;
  align: 'left' | 'right';
  cell(row: T): string;
}

/** A header and one aligned line per row, two spaces between columns. */
export function renderTable<T>(columns: readonly TableColumn<T>[], rows: readonly T[]): string {
  const cells = [columns.map((column) => column.title), ...rows.map((row) => columns.map((column) => column.cell(row)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  const lines = cells.map((line) =>
    line
      .map((text, i) => (columns[i]!.align === 'right' ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

/** `projd query` as plain text: the columns, numbers aligned right, NULL as nothing, then `(n rows)`. */
export function renderQueryResult(result: ReadOnlyQueryResult): string {
  const columns = result.columns.map(
    (column, i): TableColumn<(string | null)[]> => ({
      title: column.name,
      align: column.numeric ? 'right' : 'left',
      cell: (row) => oneLine(row[i] ?? ''),
    }),
  );
  const count = `(${result.rows.length} ${result.rows.length === 1 ? 'row' : 'rows'})\n`;
  return columns.length === 0 ? count : `${renderTable(columns, result.rows)}${count}`;
}
