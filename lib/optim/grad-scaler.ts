// Dynamic loss scaling for float16 training, numerically torch.amp.GradScaler:
// the loss is multiplied by a scale before backward so small float16
// gradients do not flush to zero; gradients are divided back before the
// optimizer step, which is skipped when any of them is inf or NaN; the scale
// halves on such a step and doubles after growthInterval clean steps.
// The scale and its growth tracker live in tensors on the loss's device and
// are updated by the native AMP kernels, so nothing syncs except the one
// found-inf read in step() (as in torch).
import * as aten from '../tensor/ops.generated';
import * as internal from '../tensor/ops.internal.generated';
import { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import { fail, numberInRange, positiveFinite, positiveInt } from '../checks';
import { scope } from '../tensor/scope';
import { noGrad } from '../autograd';

/** What the scaler needs of an optimizer (AdamW has both). */
export interface ScalableOptimizer {
  step(): void;
  parameters(): Tensor[];
}

export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  /** false: every method passes through (scale(loss) returns loss, step() just steps) */
  enabled?: boolean;
}

/** A checkpoint of the scaler, JSON-serialisable. */
export interface GradScalerState {
  scale: number;
  growthTracker: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
}

function nonFiniteCheckAndUnscale(grads: readonly Tensor[], foundInf: Tensor, invScale: Tensor): void {
  internal._amp_foreach_non_finite_check_and_unscale_(grads, foundInf, invScale);
}

function updateScale(scale: Tensor, tracker: Tensor, foundInf: Tensor, growth: number, backoff: number, interval: number): void {
  internal._amp_update_scale_(scale, tracker, foundInf, growth, backoff, interval);
}

interface TargetState {
  stage: 'unscaled' | 'stepped';
  /** one found-inf flag per gradient device */
  foundInf: Tensor[];
}

const of = (name: string) => `"${name}" of GradScaler`;

function checkPositive(v: unknown, name: string): number {
  return positiveFinite(v, of(name));
}

function checkFactors(growthFactor: unknown, backoffFactor: unknown, growthInterval: unknown): void {
  if (checkPositive(growthFactor, 'growthFactor') <= 1) fail('a number above 1', of('growthFactor'), growthFactor);
  numberInRange(backoffFactor, of('backoffFactor'), 0, 1, { lowOpen: true, highOpen: true });
  positiveInt(growthInterval, of('growthInterval'));
}

export class GradScaler {
  readonly enabled: boolean;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  private initScale: number;
  private initTracker = 0;
  private scaleT: Tensor | null = null;
  private trackerT: Tensor | null = null;
  private targets = new Map<object, TargetState>();
  /** parameters unscaled since the last update(), whatever the target: a second unscale would divide twice */
  private unscaled = new Set<Tensor>();

  constructor(options: GradScalerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`Expected options for GradScaler but received ${describe(options)}`);
    if (options.enabled !== undefined && typeof options.enabled !== 'boolean') throw new TypeError(`Expected a boolean for "enabled" of GradScaler but received ${describe(options.enabled)}`);
    this.enabled = options.enabled ?? true;
    this.initScale = checkPositive(options.initScale ?? 65536, 'initScale');
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
    checkFactors(this.growthFactor, this.backoffFactor, this.growthInterval);
  }

  /** loss * scale (the scale tensor is created on the loss's device the first time). Disabled: loss itself. */
  scale(loss: Tensor): Tensor {
    if (!(loss instanceof Tensor)) throw new TypeError(`Expected a Tensor for "loss" of GradScaler.scale but received ${describe(loss)}`);
    if (!this.enabled) return loss;
    if (this.scaleT === null) this.lazyInit(loss.device);
    const s = this.scaleT!;
    return loss.device === s.device ? loss.mul(s) : scope(() => loss.mul(s.to({ device: loss.device })));
  }

  /**
   * Divides the gradients of an optimizer's parameters (or of a list of
   * parameters) by the scale in place, recording whether any is inf or NaN.
   * Optional before step(), which unscales itself; call it to clip or inspect
   * true gradients. Once per target between update()s. Float16 gradients
   * are refused, as in torch: keep float32 master parameters.
   */
  unscale(target: ScalableOptimizer | readonly Tensor[]): void {
    if (!this.enabled) return;
    const params = this.paramsOf(target, 'unscale');
    const key = target as object;
    const st = this.targets.get(key);
    if (st?.stage === 'unscaled') throw new Error('GradScaler.unscale() has already been called on this optimizer since the last update()');
    if (st?.stage === 'stepped') throw new Error('GradScaler.unscale() is being called after step(); call update() first');
    const scaleT = this.requireScale('unscale');
    params.forEach((p, i) => {
      if (this.unscaled.has(p)) throw new Error(`GradScaler: parameter ${i} was already unscaled since the last update() (through another unscale() target); unscale each parameter once, through the optimizer that steps it`);
    });
    const foundInf: Tensor[] = [];
    noGrad(() => scope(() => {
      const groups = new Map<string, Tensor[]>();
      params.forEach((p, i) => {
        const g = p.grad;
        if (g === null) return;
        if (g.dtype === 'float16') throw new TypeError(`GradScaler cannot unscale float16 gradients (parameter ${i}); keep float32 parameters and run float16 under autocast`);
        const k = `${g.device}|${g.dtype}`;
        const list = groups.get(k);
        if (list === undefined) groups.set(k, [g]);
        else list.push(g);
      });
      // 1 / scale in double then float32, as torch computes inv_scale
      const invScale = scaleT.double().reciprocal().float();
      const perDevice = new Map<string, { inv: Tensor; found: Tensor }>();
      for (const grads of groups.values()) {
        const device = grads[0]!.device;
        let d = perDevice.get(device);
        if (d === undefined) {
          const found = aten.zeros([], 'float32', null, device).keep();
          foundInf.push(found);
          d = { inv: device === invScale.device ? invScale : invScale.to({ device }), found };
          perDevice.set(device, d);
        }
        nonFiniteCheckAndUnscale(grads, d.found, d.inv);
      }
    }));
    for (const p of params) this.unscaled.add(p);
    this.targets.set(key, { stage: 'unscaled', foundInf });
  }

  /**
   * Unscales (unless unscale() ran) and calls optimizer.step() if no gradient
   * was inf or NaN. Returns whether it stepped. Disabled: always steps.
   */
  step(optimizer: ScalableOptimizer): boolean {
    if (!this.enabled) {
      this.paramsOf(optimizer, 'step');
      optimizer.step();
      return true;
    }
    const prior = this.targets.get(optimizer);
    if (prior?.stage === 'stepped') throw new Error('GradScaler.step() has already been called since the last update()');
    if (prior === undefined) this.unscale(optimizer);
    const st = this.targets.get(optimizer)!;
    if (st.foundInf.length === 0) throw new Error('GradScaler.step(): no parameter of this optimizer has a gradient; run backward on the scaled loss first');
    let found = 0;
    for (const f of st.foundInf) found += f.item();
    st.stage = 'stepped';
    if (found !== 0) return false;
    optimizer.step();
    return true;
  }

  /**
   * Adapts the scale after all steps of an iteration: times backoffFactor if
   * any unscaled gradient was inf/NaN (and the growth count restarts), times
   * growthFactor after growthInterval clean iterations in a row. With
   * newScale, sets the scale to it instead.
   */
  update(newScale?: number): void {
    if (!this.enabled) return;
    const scaleT = this.requireScale('update');
    try {
      if (newScale !== undefined) {
        scaleT.fill_(checkPositive(newScale, 'newScale'));
        return;
      }
      const flags = [...this.targets.values()].flatMap((s) => s.foundInf);
      if (flags.length === 0) throw new Error('GradScaler.update(): no inf checks were recorded; call step() (or unscale()) first');
      noGrad(() => scope(() => {
        let combined = flags[0]!.device === scaleT.device ? flags[0]! : flags[0]!.to({ device: scaleT.device });
        for (const f of flags.slice(1)) combined = combined.add(f.to({ device: scaleT.device }));
        updateScale(scaleT, this.trackerT!, combined, this.growthFactor, this.backoffFactor, this.growthInterval);
      }));
    } finally {
      this.resetTargets();
    }
  }

  /** The current scale (1 when disabled; the initial scale before the first scale()). Reads the device. */
  getScale(): number {
    if (!this.enabled) return 1;
    return this.scaleT === null ? this.initScale : this.scaleT.item();
  }

  /** Consecutive clean steps since the last growth or backoff. */
  get growthTracker(): number {
    return this.trackerT === null ? this.initTracker : this.trackerT.item();
  }

  /** For a checkpoint; take it after update(). */
  stateDict(): GradScalerState {
    return { scale: this.getScale(), growthTracker: this.growthTracker, growthFactor: this.growthFactor, backoffFactor: this.backoffFactor, growthInterval: this.growthInterval };
  }

  /** Restores a stateDict(). A disabled scaler ignores it, as torch's does. */
  loadStateDict(state: GradScalerState): void {
    if (typeof state !== 'object' || state === null) throw new TypeError(`Expected a GradScaler state { scale, growthTracker, ... } but received ${describe(state)}`);
    const scale = checkPositive(state.scale, 'scale');
    if (!Number.isSafeInteger(state.growthTracker) || state.growthTracker < 0) {
      throw new RangeError(`Expected a non-negative integer for "growthTracker" of GradScaler state but received ${describe(state.growthTracker)}`);
    }
    checkFactors(state.growthFactor, state.backoffFactor, state.growthInterval);
    if (!this.enabled) return;
    this.initScale = scale;
    this.initTracker = state.growthTracker;
    this.growthFactor = state.growthFactor;
    this.backoffFactor = state.backoffFactor;
    this.growthInterval = state.growthInterval;
    this.scaleT?.fill_(scale);
    this.trackerT?.fill_(state.growthTracker);
  }

  /** Frees the scale tensors and any pending inf flags. */
  dispose(): void {
    this.resetTargets();
    if (this.scaleT !== null) this.initScale = this.scaleT.item();
    if (this.trackerT !== null) this.initTracker = this.trackerT.item();
    this.scaleT?.dispose();
    this.trackerT?.dispose();
    this.scaleT = null;
    this.trackerT = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private lazyInit(device: string): void {
    this.scaleT = aten.full([], this.initScale, 'float32', null, device).keep();
    this.trackerT = aten.full([], this.initTracker, 'int32', null, device).keep();
  }

  private requireScale(what: string): Tensor {
    if (this.scaleT === null) throw new Error(`GradScaler.${what}() before any scale(loss): scale the loss and run backward on it first`);
    return this.scaleT;
  }

  private paramsOf(target: ScalableOptimizer | readonly Tensor[], what: string): readonly Tensor[] {
    if (Array.isArray(target)) {
      target.forEach((p, i) => {
        if (!(p instanceof Tensor)) throw new TypeError(`Expected a Tensor for "params[${i}]" of GradScaler.${what} but received ${describe(p)}`);
      });
      return target;
    }
    const opt = target as ScalableOptimizer;
    if (typeof opt !== 'object' || opt === null || typeof opt.step !== 'function' || typeof opt.parameters !== 'function') {
      throw new TypeError(`Expected an optimizer (with step() and parameters()) or an array of Tensors for GradScaler.${what} but received ${describe(target)}`);
    }
    return opt.parameters();
  }

  private resetTargets(): void {
    for (const s of this.targets.values()) for (const f of s.foundInf) f.dispose();
    this.targets.clear();
    this.unscaled.clear();
  }
}
