// The teacher as an exponential moving average of the student.
import * as internal from '../tensor/ops.internal.generated';
import { noGrad } from '../autograd';
import type { Tensor } from '../tensor/tensor';

/**
 * Momentum at step t of T: m(t) = 1 - (1 - m0)(1 + cos(pi t / T)) / 2, rising
 * from m0 at t = 0 to 1 at t = T (t may be fractional epochs).
 */
export function momentumAt(t: number, total: number, base = 0.996): number {
  if (!(total > 0)) throw new RangeError(`Expected a positive total for the momentum schedule but received ${total}`);
  if (!(base >= 0 && base <= 1)) throw new RangeError(`Expected a base momentum in [0, 1] but received ${base}`);
  const progress = Math.min(Math.max(t / total, 0), 1);
  return 1 - ((1 - base) * (1 + Math.cos(Math.PI * progress))) / 2;
}

/**
 * teacher = m * teacher + (1 - m) * student for every pair, in place. The
 * fused path is one native call over all tensors (a multi-tensor lerp);
 * the loop path is two ops a tensor, kept for comparison (bench/ema).
 */
export function emaUpdate(teacher: readonly Tensor[], student: readonly Tensor[], m: number, options: { fused?: boolean } = {}): void {
  if (teacher.length !== student.length) throw new TypeError(`emaUpdate: ${teacher.length} teacher tensors but ${student.length} student tensors`);
  if (!(m >= 0 && m <= 1)) throw new RangeError(`Expected a momentum in [0, 1] but received ${m}`);
  if (teacher.length === 0) return;
  noGrad(() => {
    if (options.fused ?? true) {
      // lerp(t, s, w) = t + w (s - t) = (1 - w) t + w s, with w = 1 - m.
      internal._foreach_lerp__Scalar(teacher, student, 1 - m);
    } else {
      for (let i = 0; i < teacher.length; i++) {
        (teacher[i] as Tensor).mul_(m).add_(student[i] as Tensor, 1 - m);
      }
    }
  });
}
