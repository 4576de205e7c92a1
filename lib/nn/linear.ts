import { empty } from '../tensor/creation';
import { gelu, linear } from '../tensor/functional';
import { packedLinear } from '../tensor/packed-linear';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { defaultWeightInit_, uniform_ } from './init';
import { InferencePack, PackableModule } from './inference-pack';
import { positiveInt } from '../checks';

export interface LinearOptions {
  bias?: boolean;
  generator?: Generator;
}

/** y = x W^T + b, W of shape [out, in]; PyTorch's default initialisation. */
export class Linear extends PackableModule {
  weight: Tensor;
  bias: Tensor | null;
  protected readonly packed = new InferencePack(() => this.weight);

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
}
