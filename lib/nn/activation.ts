import { Module } from './module';
import { gelu } from '../tensor/functional';
import * as aten from '../tensor/ops.generated';
import type { Tensor } from '../tensor/tensor';

/** GELU, exact (erf) unless approximate is 'tanh'. */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }

  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}

/** Passes its input through (as a new handle on the same tensor). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return aten.alias(x);
  }
}
