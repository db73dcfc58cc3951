import type pg from 'pg';
import { UserError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Projection } from '../projection/types.js';
import { recordSelection, selectSelections } from '../store/checkpoints.js';
import { compareSelections, describeSelectionChange, selectionOf, type SelectionChange } from '../store/selection.js';

/**
 * Before a daemon starts its runners: refuses projections whose handlers read other events than
 * their checkpoint was built with, at the same version (an added type's events behind the
 * checkpoint would never be applied, a removed type's would stay applied), and records the
 * selection of checkpoints written before projd recorded it. Another version is the runner's
 * to handle: a newer one rebuilds, recording its selection; an older one stands by.
 * @throws UserError naming each changed projection, what changed and the two ways out.
 */
export async function checkSelections(pool: pg.Pool, projections: readonly Projection[], logger: Logger): Promise<void> {
  const stored = new Map(
    (await selectSelections(pool, projections.map((projection) => projection.name))).map((row) => [row.projection, row]),
  );
  const refused: string[] = [];
  for (const projection of projections) {
    const checkpoint = stored.get(projection.name);
    // Another number of parts is rebuilt from the start, which records the new selection.
    if (!checkpoint || checkpoint.version !== projection.version || checkpoint.parts !== (projection.partitions ?? 1)) continue;
    const selection = selectionOf(projection);
    if (checkpoint.selection === null) {
      if (await recordSelection(pool, projection.name, projection.version, selection)) {
        logger.info({ projection: projection.name, types: selection.types }, 'checkpoint.selection_recorded');
      }
      continue;
    }
    const change = compareSelections(checkpoint.selection, selection);
    if (change) refused.push(selectionChangeMessage(projection.name, change));
  }
  if (refused.length > 0) throw new UserError(refused.join('; '));
}

/** Why a projection may not run with these handlers, and the two ways out, on one line. */
export function selectionChangeMessage(name: string, change: SelectionChange): string {
  return (
    `projection '${name}' handles other event types than its checkpoint was built with ` +
    `(${describeSelectionChange(change)}): bump its version to rebuild it, or run \`projd replay ${name}\``
  );
}

/**
 * Why a running daemon applies nothing to a projection whose recorded selection moved after it
 * started (a replay with other handlers), on one line.
 */
export function selectionMovedMessage(name: string, change: SelectionChange): string {
  const parts: string[] = [];
  if (change.removed.length > 0) parts.push(`with ${change.removed.join(', ')}, which this daemon does not handle`);
  if (change.added.length > 0) parts.push(`without ${change.added.join(', ')}, which this daemon handles`);
  return (
    `projection '${name}': its checkpoint is now built ${parts.join(' and ')}; ` +
    'this daemon applies nothing to it until restarted with the current projection code'
  );
}
