// Gradient-norm clipping, numerically torch.nn.utils.clip_grad_norm_.
import * as aten from '../tensor/ops.generated';
import * as internal from '../tensor/ops.internal.generated';
import { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import { scope } from '../tensor/scope';
import { noGrad } from '../autograd';

/**
 * Scales the gradients of params in place so that their total norm (the
 * normType-norm of all gradients seen as one vector) is at most maxNorm:
 * grad *= min(maxNorm / (total + 1e-6), 1). Parameters without a gradient
 * are ignored. Returns the total norm before clipping (Infinity or NaN if a
 * gradient holds one; the gradients are then scaled by NaN or 0, as torch
 * does with error_if_nonfinite=False). normType may be Infinity.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, normType = 2): number {
  if (!Array.isArray(params)) throw new TypeError(`Expected an array of Tensors for "params" of clipGradNorm but received ${describe(params)}`);
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new TypeError(`Expected a Tensor for "params[${i}]" of clipGradNorm but received ${describe(p)}`);
  });
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw new RangeError(`Expected a non-negative number for "maxNorm" of clipGradNorm but received ${describe(maxNorm)}`);
  if (typeof normType !== 'number' || !(normType > 0)) throw new RangeError(`Expected a positive number (or Infinity) for "normType" of clipGradNorm but received ${describe(normType)}`);
  return noGrad(() => scope(() => {
    const groups = new Map<string, Tensor[]>();
    for (const p of params) {
      const g = p.grad;
      if (g === null) continue;
      // torch groups by device and dtype: one foreach call each
      const key = `${g.device}|${g.dtype}`;
      const list = groups.get(key);
      if (list === undefined) groups.set(key, [g]);
      else list.push(g);
    }
    if (groups.size === 0) return 0;
    const first = groups.values().next().value![0]!.device;
    const norms: Tensor[] = [];
    for (const grads of groups.values()) {
      for (const n of internal._foreach_norm_Scalar(grads, normType)) norms.push(n.device === first ? n : n.to({ device: first }));
    }
    const total = aten.linalg_vector_norm(aten.stack(norms), normType);
    // maxNorm / (total + 1e-6) in torch is reciprocal() * maxNorm (Tensor.__rtruediv__): same rounding here.
    const coef = aten.clamp_max(aten.reciprocal(total.add(1e-6)).mul(maxNorm), 1);
    for (const grads of groups.values()) {
      const c = grads[0]!.device === first ? coef : coef.to({ device: grads[0]!.device });
      internal._foreach_mul__Tensor(grads, c);
    }
    return total.item();
  }));
}
