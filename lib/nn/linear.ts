import { Module } from './module';
import { empty } from '../tensor/creation';
import { gelu, linear } from '../tensor/functional';
import { defaultPackedKernel, packedLinear, type PackedKernel } from '../tensor/packed-linear';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { defaultWeightInit_, uniform_ } from './init';
import { InferencePack, type InferencePackable } from './inference-pack';
import { positiveInt } from '../checks';

export interface LinearOptions {
  bias?: boolean;
  generator?: Generator;
}

/** y = x W^T + b, W of shape [out, in]; PyTorch's default initialisation. */
export class Linear extends Module implements InferencePackable {
  weight: Tensor;
  bias: Tensor | null;
  private readonly packed = new InferencePack(() => this.weight);

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
    const packed = this.packed.weightFor(x);
    return packed === null ? linear(x, this.weight, this.bias) : packedLinear(x, packed, this.bias);
  }

  /** gelu(forward(x)) (exact GELU), in the packed product's call when packed. */
  forwardGelu(x: Tensor): Tensor {
    const packed = this.packed.weightFor(x);
    if (packed !== null) return packedLinear(x, packed, this.bias, 'gelu');
    const y = linear(x, this.weight, this.bias);
    try {
      return gelu(y);
    } finally {
      y.dispose();
    }
  }

  /**
   * Keeps a packed copy of the weight for inference (packLinearWeight with
   * `kernel`, by default defaultPackedKernel()): from then on a forward
   * pass with gradients off, on a float32 CPU input outside CPU autocast,
   * runs the packed product instead of ATen's linear (the same values to
   * float rounding). The copy is remade when the weight changes (in place or
   * replaced); with gradients on, or elsewhere, the plain path runs.
   * Returns whether packing applies here (a float32 CPU weight, a packed
   * kernel that runs here, a weight that is not an inference tensor).
   */
  packForInference(kernel: PackedKernel | null = defaultPackedKernel()): boolean {
    return this.packed.pack(kernel);
  }

  /** Drops the packed copy (forward runs ATen's linear again). */
  unpack(): void {
    this.packed.unpack();
  }

  get isPacked(): boolean {
    return this.packed.isPacked;
  }

  /** The kernel the packed copy runs; null when unpacked. */
  get packedKernel(): PackedKernel | null {
    return this.packed.packedKernel;
  }

  protected override releaseCaches(): void {
    this.unpack();
  }
}
