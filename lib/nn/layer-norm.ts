import { Module } from './module';
import { ones, zeros } from '../tensor/creation';
import { layerNorm } from '../tensor/functional';
import type { Tensor } from '../tensor/tensor';
import { positiveInt } from '../checks';

/** Normalises over the last dimension, with a learned scale (1) and shift (0). */
export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;

  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    positiveInt(dim, '"dim" of LayerNorm');
    this.weight = this.registerParameter('weight', ones([dim]));
    this.bias = this.registerParameter('bias', zeros([dim]));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}
