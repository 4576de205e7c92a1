import { Module } from './module';
import { ones, zeros } from '../tensor/creation';
import { layerNorm } from '../tensor/functional';
import type { Tensor } from '../tensor/tensor';
import { positiveInt } from '../checks';
import { rowLayerNorm, rowLayerNormEnabled, rowLayerNormFits } from '../tensor/row-layer-norm';
import { inferencePass } from './inference-pack';

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

  /** In an inference pass (inferencePass), the one-pass kernel of tensor/row-layer-norm where it runs; else ATen's layer_norm. */
  forward(x: Tensor): Tensor {
    if (inferencePass(x) && rowLayerNormEnabled() && rowLayerNormFits(x, this.weight, this.bias)) return rowLayerNorm(x, this.weight, this.bias, this.eps);
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}
