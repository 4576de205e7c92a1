import { Module } from './module';
import { dropout } from '../tensor/functional';
import * as aten from '../tensor/ops.generated';
import { empty } from '../tensor/creation';
import type { Tensor } from '../tensor/tensor';
import { probability } from '../checks';

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    probability(p, '"p" of Dropout', { highOpen: true });
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

/**
 * Stochastic depth on a residual branch: in training each sample's branch
 * output is zeroed with probability p and survivors are scaled by 1/(1-p).
 */
export function dropPath(x: Tensor, p: number, training: boolean): Tensor {
  if (p === 0 || !training) return aten.alias(x);
  const keep = 1 - p;
  const shape = [x.size(0), ...new Array<number>(x.ndim - 1).fill(1)];
  const mask = aten.bernoulli__float(empty(shape, { dtype: x.dtype, device: x.device }), keep);
  mask.div_(keep);
  const out = x.mul(mask);
  mask.dispose();
  return out;
}

export class DropPath extends Module {
  constructor(readonly p = 0) {
    super();
    probability(p, '"p" of DropPath', { highOpen: true });
  }

  forward(x: Tensor): Tensor {
    return dropPath(x, this.p, this.training);
  }
}
