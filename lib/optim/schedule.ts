// Learning-rate and weight-decay schedules of the pretraining recipe. Pure
// functions of the step, so a training loop calls them every iteration (steps
// may be fractional, e.g. epoch + i / itersPerEpoch as MAE and MoCo v3 do) and
// a resumed run gets the same values without any saved schedule state.
import { fail, finiteNumber, isPlainObject, nonNegativeFinite, positiveFinite } from '../checks';

const of = (what: string, where: string) => `"${what}" of ${where}`;
const finite = (v: unknown, what: string, where: string) => finiteNumber(v, of(what, where));
const positive = (v: unknown, what: string, where: string) => positiveFinite(v, of(what, where));
const nonNegative = (v: unknown, what: string, where: string) => nonNegativeFinite(v, of(what, where));

/** The linear scaling rule: base * batchSize / reference (lr = blr * B / 256 in MAE, MoCo v3 and ExtreMA). */
export function scaledLr(base: number, batchSize: number, reference = 256): number {
  nonNegative(base, 'base', 'scaledLr');
  positive(batchSize, 'batchSize', 'scaledLr');
  positive(reference, 'reference', 'scaledLr');
  return (base * batchSize) / reference;
}

/**
 * Half a cosine from start (at step 0) to end (at totalSteps); clamped outside
 * [0, totalSteps]. Used for the weight-decay schedule (e.g. 0.04 -> 0.4) and
 * as the decay phase of warmupCosine.
 */
export function cosine(step: number, totalSteps: number, start: number, end: number): number {
  finite(step, 'step', 'cosine');
  positive(totalSteps, 'totalSteps', 'cosine');
  finite(start, 'start', 'cosine');
  finite(end, 'end', 'cosine');
  const progress = Math.min(Math.max(step / totalSteps, 0), 1);
  return end + ((start - end) * (1 + Math.cos(Math.PI * progress))) / 2;
}

export interface WarmupCosineOptions {
  /** the peak value, reached at the end of warmup */
  base: number;
  /** linear warmup length (0: no warmup) */
  warmupSteps: number;
  /** the schedule ends (at `final`) here; later steps stay at `final` */
  totalSteps: number;
  /** the value at totalSteps (default 0) */
  final?: number;
}

/**
 * Linear warmup from 0 then a half cosine to `final`, as MAE and MoCo v3 (and
 * so ExtreMA) schedule the learning rate:
 *   step < warmupSteps:  base * step / warmupSteps
 *   otherwise:           final + (base - final) * (1 + cos(pi * (step - warmupSteps) / (totalSteps - warmupSteps))) / 2
 * Steps before 0 give 0; steps past totalSteps give `final`.
 */
export function warmupCosine(step: number, options: WarmupCosineOptions): number {
  const where = 'warmupCosine';
  if (!isPlainObject(options)) fail('options { base, warmupSteps, totalSteps }', where, options, TypeError);
  finite(step, 'step', where);
  const base = nonNegative(options.base, 'base', where);
  const warmup = nonNegative(options.warmupSteps, 'warmupSteps', where);
  const total = positive(options.totalSteps, 'totalSteps', where);
  const final = nonNegative(options.final ?? 0, 'final', where);
  if (!(warmup < total)) throw new RangeError(`Expected "warmupSteps" (${warmup}) to be less than "totalSteps" (${total}) for ${where}`);
  if (step < warmup) return step <= 0 ? 0 : (base * step) / warmup;
  return cosine(step - warmup, total - warmup, base, final);
}
