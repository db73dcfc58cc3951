/**
 * Which events a projection reads, as recorded with its checkpoint in `projd.checkpoints.selection`.
 * A checkpoint only means something for the selection that built it: a type added without a
 * rebuild would leave its events behind the checkpoint, never applied.
 */
export interface Selection {
  /** Its handler keys (event types, or patterns where handlers use them), sorted. */
  types: readonly string[];
}

/** The selection of a projection: its handler keys, which its definition keeps sorted (`eventTypes`). */
export function selectionOf(projection: { eventTypes: readonly string[] }): Selection {
  return { types: projection.eventTypes };
}

/** The stored jsonb as a selection; null when none was recorded (or it has no shape this code knows). */
export function toSelection(stored: unknown): Selection | null {
  const types = (stored as { types?: unknown } | null)?.types;
  if (!Array.isArray(types) || !types.every((type) => typeof type === 'string')) return null;
  return { types };
}

/** How a selection differs from the one recorded with the checkpoint. */
export interface SelectionChange {
  added: string[];
  removed: string[];
}

/** What changed from `recorded` to `current`; null when nothing did, or nothing was recorded. */
export function compareSelections(recorded: Selection | null, current: Selection): SelectionChange | null {
  if (recorded === null) return null;
  const before = new Set(recorded.types);
  const now = new Set(current.types);
  const added = current.types.filter((type) => !before.has(type));
  const removed = recorded.types.filter((type) => !now.has(type));
  return added.length === 0 && removed.length === 0 ? null : { added, removed };
}

/** `added: a, b; removed: c`. */
export function describeSelectionChange(change: SelectionChange): string {
  const parts = [];
  if (change.added.length > 0) parts.push(`added: ${change.added.join(', ')}`);
  if (change.removed.length > 0) parts.push(`removed: ${change.removed.join(', ')}`);
  return parts.join('; ');
}
