// Weight initialisers, in place and without recording autograd, as
// torch.nn.init. Each takes an optional Generator so a model built from a
// seed is reproducible without touching the global RNG.
import { noGrad } from '../autograd';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import * as aten from '../tensor/ops.generated';

/** fan_in and fan_out as torch.nn.init computes them ([out, in, ...kernel]). */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  const shape = t.shape;
  if (shape.length < 2) throw new TypeError(`Fan in and fan out need a tensor with at least 2 dimensions, but the shape is [${shape.join(', ')}]`);
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: (shape[1] as number) * receptive, fanOut: (shape[0] as number) * receptive };
}

export function uniform_(t: Tensor, low: number, high: number, generator?: Generator): Tensor {
  noGrad(() => aten.uniform_(t, low, high, generator ?? null));
  return t;
}

export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  noGrad(() => aten.normal_(t, mean, std, generator ?? null));
  return t;
}

export function constant_(t: Tensor, value: number): Tensor {
  noGrad(() => t.fill_(value));
  return t;
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/** U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio). */
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const { fanIn, fanOut } = fans(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -a, a, generator);
}

/** PyTorch's default for Linear and Conv weights: kaiming-uniform with a = sqrt(5), i.e. U(±1/sqrt(fan_in)). */
export function defaultWeightInit_(t: Tensor, generator?: Generator): Tensor {
  const bound = 1 / Math.sqrt(fans(t).fanIn);
  return uniform_(t, -bound, bound, generator);
}
