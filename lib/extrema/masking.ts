// Extreme masking: per image one random permutation of the N patch indices;
// view i keeps the slice [i*n, (i+1)*n) of it, so the M views are disjoint
// ("without replacement"). The independent mode draws a fresh permutation
// per view, so views may overlap.
import { rand } from '../tensor/creation';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import { drawRows, type Generator } from '../runtime/generator';
import { describe } from '../tensor/dtype';

export type MaskMode = 'disjoint' | 'independent';

export interface MaskingOptions {
  /** Fraction of patches hidden from each view, in [0, 1). */
  ratio: number;
  /** Views per image, M. */
  numMasks: number;
  mode?: MaskMode;
}

/**
 * Tokens each view keeps: floor(N * (1 - ratio)). The small epsilon keeps
 * products like 10 * (1 - 0.9) = 0.9999999999999998 at 1, which the authors'
 * plain int() would turn into 0.
 */
export function visibleCount(numPatches: number, ratio: number): number {
  return Math.floor(numPatches * (1 - ratio) + 1e-9);
}

/** Throws a clear error for an impossible combination; returns n, the tokens per view. */
export function checkMasking(numPatches: number, o: MaskingOptions): number {
  const { ratio, numMasks } = o;
  const mode = o.mode ?? 'disjoint';
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio < 1)) throw new RangeError(`Expected a mask ratio in [0, 1) but received ${describe(ratio)}`);
  if (!Number.isSafeInteger(numMasks) || numMasks < 1) throw new RangeError(`Expected a positive integer number of masks but received ${describe(numMasks)}`);
  if (mode !== 'disjoint' && mode !== 'independent') throw new TypeError(`Expected "disjoint" or "independent" for the mask mode but received ${describe(mode)}`);
  const n = visibleCount(numPatches, ratio);
  if (n < 1) throw new RangeError(`Mask ratio ${ratio} leaves no visible token of ${numPatches} patches (floor(${numPatches} * ${1 - ratio}) = 0)`);
  if (mode === 'disjoint' && n * numMasks > numPatches) {
    throw new RangeError(`${numMasks} disjoint masks of ${n} visible tokens need ${n * numMasks} patches but the image has ${numPatches}; lower numMasks to ${Math.floor(numPatches / n)}, raise the ratio, or use independent masks`);
  }
  return n;
}

/** Patch indices each view keeps, int64 [batch, M, n]. */
export function sampleMasks(batch: number, numPatches: number, o: MaskingOptions & { generator?: Generator; device?: string }): Tensor {
  const n = checkMasking(numPatches, o);
  if (!Number.isSafeInteger(batch) || batch < 1) throw new RangeError(`Expected a positive batch size but received ${describe(batch)}`);
  const m = o.numMasks;
  const random = { generator: o.generator, device: o.device };
  return scope(() => {
    if ((o.mode ?? 'disjoint') === 'disjoint') {
      // argsort of uniform noise is a uniformly random permutation.
      const perm = drawRows([batch, numPatches], o.generator, (rows) => rand(rows, random)).argsort(-1);
      return perm.narrow(1, 0, m * n).reshape(batch, m, n);
    }
    const perms = drawRows([batch, m, numPatches], o.generator, (rows) => rand(rows, random)).argsort(-1);
    return perms.narrow(2, 0, n).contiguous();
  });
}
