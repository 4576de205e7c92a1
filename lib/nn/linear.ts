import { Module } from './module';
import { empty } from '../tensor/creation';
import { gelu, linear } from '../tensor/functional';
import { packedLinear, packedLinearAvailable, packLinearWeight } from '../tensor/packed-linear';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { isGradEnabled, noGrad } from '../autograd';
import { isAutocastEnabled } from '../runtime/device-runtime';
import { defaultWeightInit_, uniform_ } from './init';
import { positiveInt } from '../checks';

export interface LinearOptions {
  bias?: boolean;
  generator?: Generator;
}

/** oneDNN's copy of a weight, and which weight (object and in-place version) it was made from. */
interface Packed {
  weight: Tensor;
  version: number;
  from: Tensor;
}

/** y = x W^T + b, W of shape [out, in]; PyTorch's default initialisation. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  private packed: Packed | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: LinearOptions = {}) {
    super();
    positiveInt(inFeatures, '"inFeatures" of Linear');
    positiveInt(outFeatures, '"outFeatures" of Linear');
    this.weight = this.registerParameter('weight', defaultWeightInit_(empty([outFeatures, inFeatures]), options.generator));
    if (options.bias ?? true) {
      const bound = 1 / Math.sqrt(inFeatures);
      this.bias = this.registerParameter('bias', uniform_(empty([outFeatures]), -bound, bound, options.generator));
    } else {
      this.bias = null;
    }
  }

  forward(x: Tensor): Tensor {
    const packed = this.packedWeight(x);
    return packed === null ? linear(x, this.weight, this.bias) : packedLinear(x, packed, this.bias);
  }

  /** gelu(forward(x)) (exact GELU), as one oneDNN pass when packed. */
  forwardGelu(x: Tensor): Tensor {
    const packed = this.packedWeight(x);
    if (packed !== null) return packedLinear(x, packed, this.bias, 'gelu');
    const y = linear(x, this.weight, this.bias);
    try {
      return gelu(y);
    } finally {
      y.dispose();
    }
  }

  /**
   * Keeps a oneDNN-packed copy of the weight for inference: from then on a
   * forward pass with gradients off, on a float32 CPU input outside CPU
   * autocast, runs oneDNN's packed product instead of ATen's linear (the
   * same values to float rounding). The copy is remade when the weight changes (in place or
   * replaced); with gradients on, or elsewhere, the plain path runs.
   * Returns whether packing applies here (a float32 CPU weight, a libtorch
   * with oneDNN, a weight that is not an inference tensor).
   */
  packForInference(): boolean {
    this.unpack();
    if (!packedLinearAvailable() || this.weight.dtype !== 'float32' || this.weight.device !== 'cpu') return false;
    const version = this.weight.version;
    if (version < 0) return false; // an inference tensor keeps no version, so a change could not be seen
    // Without gradients: the copy must not hang on the weight's autograd graph.
    const weight = noGrad(() => packLinearWeight(this.weight)).keep();
    this.packed = { weight, version, from: this.weight };
    return true;
  }

  /** Drops the packed copy (forward runs ATen's linear again). */
  unpack(): void {
    this.packed?.weight.dispose();
    this.packed = null;
  }

  get isPacked(): boolean {
    return this.packed !== null;
  }

  protected override releaseCaches(): void {
    this.unpack();
  }

  /** The packed weight to use for this input, remade if stale; null for the plain path. */
  private packedWeight(x: Tensor): Tensor | null {
    const p = this.packed;
    // Under CPU autocast ATen's linear runs in the autocast dtype; the packed product would not.
    if (p === null || x.dtype !== 'float32' || isGradEnabled() || isAutocastEnabled('cpu')) return null;
    // Replaced (a user assignment) or written in place since: pack the weight as it is now, if it qualifies.
    if (p.from !== this.weight || p.from.isDisposed || this.weight.version !== p.version) {
      return this.packForInference() ? this.packed!.weight : null;
    }
    return p.weight;
  }
}
