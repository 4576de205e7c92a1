// NumPy-style indexing built from select / slice / unsqueeze / index ops,
// following the same rules as PyTorch's Python indexing.
import { describe } from './dtype';
import * as aten from './ops.generated';
import type { Tensor } from './tensor';

/** A slice start:stop:step; any part may be omitted. */
export interface Slice {
  readonly start?: number | null;
  readonly stop?: number | null;
  readonly step?: number;
  readonly __slice: true;
}

export function slice(start?: number | null, stop?: number | null, step = 1): Slice {
  if (!Number.isInteger(step) || step <= 0) throw new RangeError(`Expected a positive integer step for slice but received ${step}`);
  return { start: start ?? null, stop: stop ?? null, step, __slice: true };
}

/** number: select; slice(): range; null: new axis; '...': ellipsis; Tensor: advanced index. */
export type IndexSpec = number | Slice | null | '...' | Tensor;

function isSlice(x: unknown): x is Slice {
  return typeof x === 'object' && x !== null && (x as Slice).__slice === true;
}

function isTensorLike(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && typeof (x as Tensor)._id === 'number' && '_kept' in (x as object);
}

export function indexTensor(self: Tensor, spec: readonly IndexSpec[]): Tensor {
  const ellipses = spec.filter((s) => s === '...').length;
  if (ellipses > 1) throw new TypeError('An index can hold at most one ellipsis ("...")');
  const consumed = spec.filter((s) => s !== null && s !== '...').length;
  const ndim = self.ndim;
  if (consumed > ndim) throw new RangeError(`Too many indices (${consumed}) for a tensor with ${ndim} dimensions`);
  let result = self;
  // Intermediate views are freed as soon as the next one exists.
  const step = (next: Tensor): void => {
    if (result !== self) result.dispose();
    result = next;
  };
  let dim = 0;
  const advanced: (Tensor | null)[] = [];
  let anyAdvanced = false;
  for (const s of spec) {
    if (s === '...') {
      const skip = ndim - consumed;
      for (let k = 0; k < skip; k++) advanced.push(null);
      dim += skip;
    } else if (s === null) {
      step(aten.unsqueeze(result, dim));
      advanced.push(null);
      dim += 1;
    } else if (typeof s === 'number') {
      if (!Number.isInteger(s)) throw new TypeError(`Expected integer indices but received ${s}`);
      const size = result.size(dim);
      if (s < -size || s >= size) throw new RangeError(`Index ${s} is out of bounds for dimension ${dim} with size ${size}`);
      step(aten.select_int(result, dim, s));
    } else if (isSlice(s)) {
      step(aten.slice_Tensor(result, dim, s.start ?? null, s.stop ?? null, s.step ?? 1));
      advanced.push(null);
      dim += 1;
    } else if (isTensorLike(s)) {
      advanced.push(s);
      anyAdvanced = true;
      dim += 1;
    } else {
      throw new TypeError(`Expected a number, slice(), null, "..." or a Tensor as an index but received ${describe(s)}`);
    }
  }
  if (anyAdvanced) {
    while (advanced.length > 0 && advanced[advanced.length - 1] === null) advanced.pop();
    step(aten.index_Tensor(result, advanced));
  }
  return result === self ? aten.alias(self) : result;
}
