// Fixed 2-D sine-cosine position embeddings (the MAE recipe).
import { fromTypedArray } from '../tensor/creation';
import type { Tensor } from '../tensor/tensor';
import { positiveInt } from '../checks';

/**
 * [1, gridH * gridW, dim] float32, tokens in row-major order. The first dim/2
 * channels encode the column index and the last dim/2 the row index; each half
 * is [sin(p w_k) for k < dim/4] then [cos(p w_k) for k < dim/4], with
 * w_k = 1 / 10000^(k / (dim/4)). Computed in float64, stored as float32.
 */
export function sinCosPosEmbed2d(dim: number, gridH: number, gridW: number): Tensor {
  positiveInt(dim, '"dim" of sinCosPosEmbed2d');
  positiveInt(gridH, '"gridH" of sinCosPosEmbed2d');
  positiveInt(gridW, '"gridW" of sinCosPosEmbed2d');
  if (dim % 4 !== 0) throw new RangeError(`The 2-D sin-cos position embedding needs a width divisible by 4, but it is ${dim}`);
  const quarter = dim / 4;
  const omega = Float64Array.from({ length: quarter }, (_, k) => 1 / Math.pow(10000, k / quarter));
  const out = new Float32Array(gridH * gridW * dim);
  for (let row = 0; row < gridH; row++) {
    for (let col = 0; col < gridW; col++) {
      const base = (row * gridW + col) * dim;
      for (let k = 0; k < quarter; k++) {
        const w = omega[k] as number;
        out[base + k] = Math.sin(col * w);
        out[base + quarter + k] = Math.cos(col * w);
        out[base + 2 * quarter + k] = Math.sin(row * w);
        out[base + 3 * quarter + k] = Math.cos(row * w);
      }
    }
  }
  return fromTypedArray(out, [1, gridH * gridW, dim]);
}
