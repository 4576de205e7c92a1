// Objectives between the student's predictions and the teacher's projections.
// Predictions are stacked mask-major: row m*B + b is view m of image b.
import { normalize, crossEntropy } from '../tensor/functional';
import { arange } from '../tensor/creation';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';

function views(p: Tensor, z: Tensor, where: string): { m: number; b: number } {
  const [rows, c] = p.shape as [number, number];
  const [b, cz] = z.shape as [number, number];
  if (p.ndim !== 2 || z.ndim !== 2 || c !== cz || b === 0 || rows % b !== 0) {
    throw new TypeError(`${where}: expected predictions [M*B, C] and targets [B, C] but received [${p.shape.join(', ')}] and [${z.shape.join(', ')}]`);
  }
  return { m: rows / b, b };
}

/**
 * Asymmetric BYOL loss: || p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z), averaged over
 * the batch and then over the masks. z should carry no gradient (the teacher's).
 */
export function byolLoss(p: Tensor, z: Tensor): Tensor {
  const { m } = views(p, z, 'byolLoss');
  return scope(() => {
    const target = normalize(z, 2, 1).repeat(m, 1);
    return normalize(p, 2, 1).sub(target).square().sum(1).mean();
  });
}

/**
 * InfoNCE with in-batch negatives, as MoCo v3 computes it: for each mask,
 * cross entropy of (p_hat z_hat^T / T) against the diagonal, scaled by 2T;
 * averaged over masks. The paper's Table 6 uses T = 0.2.
 */
export function infoNceLoss(p: Tensor, z: Tensor, temperature = 0.2): Tensor {
  if (!(typeof temperature === 'number' && temperature > 0)) throw new RangeError(`Expected a positive temperature but received ${String(temperature)}`);
  const { m, b } = views(p, z, 'infoNceLoss');
  return scope(() => {
    const q = normalize(p, 2, 1).reshape(m, b, -1);
    const k = normalize(z, 2, 1);
    const logits = q.matmul(k.t()).div(temperature).reshape(m * b, b);
    const labels = arange(b, undefined, 1, { device: p.device }).repeat(m);
    return crossEntropy(logits, labels).mul(2 * temperature);
  });
}
