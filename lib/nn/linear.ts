import { Module } from './module';
import { empty } from '../tensor/creation';
import { linear } from '../tensor/functional';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { defaultWeightInit_, uniform_ } from './init';
import { positiveInt } from '../checks';

export interface LinearOptions {
  bias?: boolean;
  generator?: Generator;
}

/** y = x W^T + b, W of shape [out, in]; PyTorch's default initialisation. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;

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
    return linear(x, this.weight, this.bias);
  }
}
