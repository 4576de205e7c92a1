// The teacher as an exponential moving average of the student.
import * as internal from '../tensor/ops.internal.generated';
import { noGrad } from '../autograd';
import { Tensor } from '../tensor/tensor';
import { scope } from '../tensor/scope';
import { oneOf } from '../checks';
import { MOMENTUM_SCHEDULES, type MomentumSchedule } from './config';

/**
 * Momentum at step t of T. 'cosine' (the paper's): m(t) = 1 - (1 - m0)(1 +
 * cos(pi t / T)) / 2, rising from m0 at t = 0 to 1 at t = T (t may be
 * fractional epochs). 'constant': m0 throughout (a deviation; on short runs
 * the cosine schedule freezes the teacher for the last part of training).
 */
export function momentumAt(t: number, total: number, base = 0.996, schedule: MomentumSchedule = 'cosine'): number {
  if (!(total > 0)) throw new RangeError(`Expected a positive total for the momentum schedule but received ${total}`);
  if (!(base >= 0 && base <= 1)) throw new RangeError(`Expected a base momentum in [0, 1] but received ${base}`);
  if (oneOf(schedule, '"schedule" of momentumAt', MOMENTUM_SCHEDULES) === 'constant') return base;
  const progress = Math.min(Math.max(t / total, 0), 1);
  return 1 - ((1 - base) * (1 + Math.cos(Math.PI * progress))) / 2;
}

/**
 * teacher = m * teacher + (1 - m) * student for every pair, in place. The
 * fused path is one native call over all tensors (a multi-tensor lerp);
 * the loop path is two ops a tensor, kept for comparison (bench/ema).
 */
export function emaUpdate(teacher: readonly Tensor[], student: readonly Tensor[], m: number | Tensor, options: { fused?: boolean } = {}): void {
  if (teacher.length !== student.length) throw new TypeError(`emaUpdate: ${teacher.length} teacher tensors but ${student.length} student tensors`);
  if (m instanceof Tensor) return emaUpdateFromDevice(teacher, student, m);
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

/**
 * The update with the momentum in a 0-dim tensor on the parameters' device,
 * for a step captured in a device graph (the host number would be baked into
 * the graph). It computes lerp's own formula for weights below 0.5,
 * t + (1 - m)(s - t), in three multi-tensor ops, since no foreach lerp takes
 * one tensor weight; the momentum is not range-checked (that would read it back).
 */
function emaUpdateFromDevice(teacher: readonly Tensor[], student: readonly Tensor[], m: Tensor): void {
  if (m.numel !== 1) throw new TypeError(`Expected a one-element momentum tensor but received shape [${m.shape.join(', ')}]`);
  if (teacher.length === 0) return;
  noGrad(() => scope(() => {
    const step = internal._foreach_sub_List(student, teacher);
    internal._foreach_mul__Tensor(step, m.neg().add(1));
    internal._foreach_add__List(teacher, step);
  }));
}
