/**
 * One part of a projection split by stream (`partitions: N`): the streams for which
 * `projd.stream_part(stream_id, count)` is `index`. A projection that is not split is the one
 * part `{ index: 0, count: 1 }`, and reads, counts and locks exactly as before partitions.
 */
export interface Part {
  /** 0 to `count - 1`. */
  index: number;
  /** The projection's `partitions`. */
  count: number;
}

/** The part of a projection that is not split: every stream. */
export const WHOLE: Part = Object.freeze({ index: 0, count: 1 });

/** The parts of a projection split `count` ways, in order. */
export function partsOf(count: number): Part[] {
  return Array.from({ length: count }, (_, index) => ({ index, count }));
}

/** The parts a projection runs as: its `partitions` parts, or the whole when it is not split. */
export function partsOfProjection(projection: { partitions?: number }): Part[] {
  const count = projection.partitions ?? 1;
  return count > 1 ? partsOf(count) : [WHOLE];
}

/** `2/4` for the third part of four, in logs and messages. */
export function partLabel(part: Part): string {
  return `${part.index}/${part.count}`;
}

/**
 * "This event's stream belongs to the part", in SQL; `count` and `index` are SQL for two
 * integers. Only for split projections: a whole one reads without it, so without the hash.
 */
export function streamPartMatchesSql(streamId: string, count: string, index: string): string {
  return `projd.stream_part(${streamId}, ${count}) = ${index}`;
}
