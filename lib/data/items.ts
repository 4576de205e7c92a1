// Rules every dataset reader shares (./dataset, ./shards): which item indices
// exist, and how a `limit` option cuts a dataset to its first items.

export function checkIndex(i: number, count: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= count) throw new RangeError(`Expected an item index in [0, ${count}) but received ${String(i)}`);
}

/** The first `limit` of `stored` items (0 or absent: all). */
export function limited(stored: number, limit: number | undefined): number {
  return limit === undefined || limit === 0 ? stored : Math.min(stored, limit);
}
