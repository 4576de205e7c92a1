// AdamW with decoupled weight decay, numerically torch.optim.AdamW (no
// amsgrad, no maximize). Two implementations of one update:
//  - fused: one native `_fused_adamw_` call per group and device/dtype (the
//    kernel torch.optim.AdamW(fused=True) runs), the default: about 4x faster
//    than foreach on CPU for ~120 tensors / 5M parameters (bench/adamw.ts);
//  - foreach: the multi-tensor sequence of torch's foreach AdamW, for devices
//    or dtypes without the fused kernel, or when asked for with fused: false.
// State (exp_avg, exp_avg_sq, a float32 step per parameter) is created on a
// parameter's first step, kept past every scope and freed by dispose().
import * as aten from '../tensor/ops.generated';
import * as internal from '../tensor/ops.internal.generated';
import { Tensor } from '../tensor/tensor';
import { describe, isFloating, type DType } from '../tensor/dtype';
import { fail, nonNegativeFinite, positiveFinite } from '../checks';
import { scope } from '../tensor/scope';
import { noGrad } from '../autograd';
import type { ParamGroup } from './param-groups';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** true: the fused kernel (an error where it is missing); false: foreach; unset: fused where supported */
  fused?: boolean;
}

/** A group as the optimizer holds it: hyperparameters are read at every step() and may be changed between steps. */
export interface AdamWGroup {
  readonly params: readonly Tensor[];
  /** the names given, or `param<flat index>` */
  readonly names: readonly string[];
  lr: number;
  weightDecay: number;
  lrScale: number;
  betas: [number, number];
  eps: number;
  /** created with a non-zero weight decay: setWeightDecay() changes only such groups */
  readonly decays: boolean;
}

export interface AdamWGroupState {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  lrScale: number;
  /** number of parameters in the group, checked on load */
  numParams: number;
}

/**
 * What stateDict() returns and loadStateDict() takes. `state` keys are
 * `<flat index>.exp_avg`, `.exp_avg_sq` and `.step` (a float32 scalar), flat
 * indices counting parameters across groups in order; parameters that never
 * had a gradient have no entries, as in torch.
 */
export interface AdamWStateDict {
  state: Map<string, Tensor> | Record<string, Tensor>;
  /** numParams may be left out (then it is not checked) */
  groups: (Omit<AdamWGroupState, 'numParams'> & { numParams?: number })[];
}

interface ParamState {
  expAvg: Tensor;
  expAvgSq: Tensor;
  step: Tensor;
  /** the step tensor's value, mirrored so the foreach path never reads it back */
  count: number;
}

// The fused kernel exists for these on CPU and CUDA (aten FusedAdamKernel).
const FUSED_DTYPES: ReadonlySet<DType> = new Set<DType>(['float32', 'float64', 'float16', 'bfloat16']);
const STATE_KINDS = ['exp_avg', 'exp_avg_sq', 'step'] as const;

export function fusedAdamWSupported(device: string, dtype: DType): boolean {
  return FUSED_DTYPES.has(dtype) && (device === 'cpu' || device.startsWith('cuda'));
}

function where(name: string): string {
  return `"${name}" of AdamW`;
}

function checkLr(v: unknown, name: string, allowZero: boolean): number {
  return allowZero ? nonNegativeFinite(v, where(name)) : positiveFinite(v, where(name));
}

function checkBetas(v: unknown, name: string): [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !v.every((b) => typeof b === 'number' && b >= 0 && b < 1)) fail('two numbers in [0, 1)', where(name), v);
  return [v[0] as number, v[1] as number];
}

function checkHyper(g: { lr: unknown; weightDecay: unknown; lrScale: unknown; betas: unknown; eps: unknown }, label: string, lrAllowZero: boolean): void {
  checkLr(g.lr, `${label}.lr`, lrAllowZero);
  checkLr(g.weightDecay, `${label}.weightDecay`, true);
  checkLr(g.lrScale, `${label}.lrScale`, true);
  checkBetas(g.betas, `${label}.betas`);
  checkLr(g.eps, `${label}.eps`, true);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

interface Bucket {
  fused: boolean;
  params: Tensor[];
  grads: Tensor[];
  expAvgs: Tensor[];
  expAvgSqs: Tensor[];
  steps: Tensor[];
  states: ParamState[];
}

export class AdamW {
  readonly groups: AdamWGroup[];
  private readonly flat: Tensor[] = [];
  /** device|dtype of each flat parameter, fixed for a tensor's life */
  private readonly keys: string[] = [];
  private readonly supported: boolean[] = [];
  private state: (ParamState | undefined)[] = [];
  private readonly mode: 'fused' | 'foreach' | 'auto';
  private disposed = false;
  /** With useDeviceLr(): each group's lr on each of its parameters' devices. */
  private deviceLr: Map<AdamWGroup, Map<string, Tensor>> | null = null;

  constructor(params: Tensor[] | ParamGroup[], options: AdamWOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`Expected options { lr } for AdamW but received ${describe(options)}`);
    const lr = checkLr(options.lr, 'lr', false);
    const betas = checkBetas(options.betas ?? [0.9, 0.999], 'betas');
    const eps = checkLr(options.eps ?? 1e-8, 'eps', true);
    const weightDecay = checkLr(options.weightDecay ?? 0.01, 'weightDecay', true);
    if (options.fused !== undefined && typeof options.fused !== 'boolean') throw new TypeError(`Expected a boolean for ${where('fused')} but received ${describe(options.fused)}`);
    this.mode = options.fused === undefined ? 'auto' : options.fused ? 'fused' : 'foreach';
    if (!Array.isArray(params)) throw new TypeError(`Expected an array of Tensors or parameter groups for ${where('params')} but received ${describe(params)}`);
    // A list starting with a Tensor is one group of tensors (its elements are checked below).
    const groups: ParamGroup[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    const seen = new Set<Tensor>();
    this.groups = groups.map((g, gi) => {
      const label = `groups[${gi}]`;
      if (typeof g !== 'object' || g === null || g instanceof Tensor || !Array.isArray(g.params)) {
        throw new TypeError(`Expected a Tensor or a parameter group { params } for ${where(`params[${gi}]`)} but received ${describe(g)}`);
      }
      if (g.names !== undefined && (!Array.isArray(g.names) || g.names.length !== g.params.length)) {
        throw new TypeError(`Expected ${g.params.length} names for ${where(`${label}.names`)} but received ${describe(g.names)}`);
      }
      const names: string[] = [];
      g.params.forEach((p, pi) => {
        const name = g.names?.[pi] ?? `param${this.flat.length}`;
        const what = `${label}.params[${pi}] ("${name}")`;
        if (!(p instanceof Tensor)) throw new TypeError(`Expected a Tensor for ${where(what)} but received ${describe(p)}`);
        if (p.isDisposed) throw new Error(`Parameter ${what} of AdamW has been disposed`);
        if (!isFloating(p.dtype)) throw new TypeError(`Expected a floating point Tensor for ${where(what)} but received ${p.dtype}`);
        // A frozen tensor never gets a gradient; listing it is almost always a mistake (paramGroupsForDecay leaves such tensors out).
        if (!p.requiresGrad) throw new Error(`Parameter ${what} of AdamW does not require grad; leave frozen tensors out of the optimizer`);
        if (!p.isLeaf) throw new Error(`Parameter ${what} of AdamW is not a leaf tensor; optimize the tensor the graph starts from`);
        if (seen.has(p)) throw new Error(`Parameter ${what} of AdamW appears more than once`);
        seen.add(p);
        names.push(name);
        this.flat.push(p);
        const device = p.device;
        this.keys.push(`${device}|${p.dtype}`);
        this.supported.push(fusedAdamWSupported(device, p.dtype));
        if (this.mode === 'fused' && !this.supported[this.supported.length - 1]) {
          throw new Error(`fused AdamW has no kernel for ${p.dtype} tensors on ${device} (${what}); use fused: false`);
        }
      });
      const group: AdamWGroup = {
        params: g.params.slice(),
        names,
        lr: g.lr ?? lr,
        weightDecay: g.weightDecay ?? weightDecay,
        lrScale: g.lrScale ?? 1,
        betas: g.betas ?? betas,
        eps: g.eps ?? eps,
        decays: (g.weightDecay ?? weightDecay) !== 0,
      };
      checkHyper(group, label, false);
      group.betas = [group.betas[0], group.betas[1]];
      return group;
    });
    if (this.flat.length === 0) throw new Error('AdamW got no parameters to optimize');
    this.state = new Array(this.flat.length).fill(undefined);
  }

  /** Every parameter, in flat-index order. */
  parameters(): Tensor[] {
    return this.flat.slice();
  }

  /** Which implementation step() uses; by default fused wherever the kernel exists ('mixed': some parameters each). */
  get implementation(): 'fused' | 'foreach' | 'mixed' {
    if (this.mode !== 'auto') return this.mode;
    const n = this.supported.filter(Boolean).length;
    return n === this.supported.length ? 'fused' : n === 0 ? 'foreach' : 'mixed';
  }

  /** Sets every group's lr to lr * lrScale (lr may be 0, as at the start of warmup). */
  setLr(lr: number): void {
    checkLr(lr, 'lr', true);
    for (const g of this.groups) g.lr = lr * g.lrScale;
  }

  /** Sets the weight decay of groups created with a non-zero one; no-decay groups stay at 0. */
  setWeightDecay(weightDecay: number): void {
    checkLr(weightDecay, 'weightDecay', true);
    for (const g of this.groups) if (g.decays) g.weightDecay = weightDecay;
  }

  /** Drops every parameter's gradient (p.grad = null), as torch's zero_grad(set_to_none=True). */
  zeroGrad(): void {
    this.checkLive();
    for (const p of this.flat) p.grad = null;
  }

  /**
   * From now on step() reads each group's lr from a tensor on the parameters'
   * device instead of taking it as a number, so a step captured in a device
   * graph (lib/runtime/graph.ts) follows the schedule: after setLr(), call
   * writeDeviceLr() outside the capture, before each step or replay. Needs
   * the fused kernel for every parameter (the foreach path's bias
   * corrections are host numbers).
   */
  useDeviceLr(): void {
    this.checkLive();
    if (this.implementation !== 'fused') throw new Error(`AdamW.useDeviceLr needs the fused kernel for every parameter, but this optimizer runs ${this.implementation}`);
    if (this.deviceLr !== null) return;
    // float32 is what the CUDA kernel reads; on CPU it reads a double, so keep the schedule's value exactly.
    this.deviceLr = new Map(this.groups.map((g) => [g, new Map([...new Set(g.params.map((p) => p.device))].map((device) =>
      [device, aten.zeros([], device === 'cpu' ? 'float64' : 'float32', null, device).keep()]))]));
    this.writeDeviceLr();
  }

  /** Copies each group's lr into its device tensors (a kernel launch each, no host sync); see useDeviceLr(). */
  writeDeviceLr(): void {
    this.checkLive();
    if (this.deviceLr === null) throw new Error('AdamW.writeDeviceLr: call useDeviceLr() first');
    for (const [g, perDevice] of this.deviceLr) for (const t of perDevice.values()) t.fill_(g.lr);
  }

  /** One update of every parameter that has a gradient; the others are skipped (their state does not advance). */
  step(): void {
    this.checkLive();
    this.groups.forEach((g, gi) => checkHyper(g, `groups[${gi}]`, true));
    noGrad(() => scope(() => {
      let flatIndex = 0;
      for (const g of this.groups) {
        const buckets = new Map<string, Bucket>();
        for (const p of g.params) {
          const i = flatIndex++;
          const grad = p.grad;
          if (grad === null) continue;
          const st = this.state[i] ?? (this.state[i] = newState(p));
          const key = this.keys[i] as string;
          let b = buckets.get(key);
          if (b === undefined) {
            const fused = this.mode === 'fused' || (this.mode === 'auto' && this.supported[i] === true);
            buckets.set(key, (b = { fused, params: [], grads: [], expAvgs: [], expAvgSqs: [], steps: [], states: [] }));
          }
          b.params.push(p);
          b.grads.push(grad);
          b.expAvgs.push(st.expAvg);
          b.expAvgSqs.push(st.expAvgSq);
          b.steps.push(st.step);
          b.states.push(st);
        }
        for (const b of buckets.values()) {
          internal._foreach_add__Scalar(b.steps, 1);
          for (const st of b.states) st.count += 1;
          if (b.fused) fusedStep(b, g, this.deviceLr?.get(g)?.get(b.params[0]!.device));
          else foreachStep(b, g);
        }
      }
    }));
  }

  /**
   * The optimizer's state for a checkpoint. The tensors are new handles on
   * the live state (no copy): save them before the next step(); disposing
   * them does not free the optimizer's state.
   */
  stateDict(): { state: Map<string, Tensor>; groups: AdamWGroupState[] } {
    this.checkLive();
    const state = new Map<string, Tensor>();
    this.state.forEach((st, i) => {
      if (st === undefined) return;
      state.set(`${i}.exp_avg`, st.expAvg.detach());
      state.set(`${i}.exp_avg_sq`, st.expAvgSq.detach());
      state.set(`${i}.step`, st.step.detach());
    });
    const groups = this.groups.map((g) => ({
      lr: g.lr, betas: [g.betas[0], g.betas[1]] as [number, number], eps: g.eps, weightDecay: g.weightDecay, lrScale: g.lrScale, numParams: g.params.length,
    }));
    return { state, groups };
  }

  /**
   * Restores a stateDict(): state values are copied into this optimizer's own
   * tensors (cast to the parameter's dtype and device) and the groups'
   * hyperparameters are set. Everything is checked before anything changes.
   */
  loadStateDict(sd: AdamWStateDict): void {
    this.checkLive();
    if (typeof sd !== 'object' || sd === null) throw new TypeError(`Expected a state dict { state, groups } for AdamW.loadStateDict but received ${describe(sd)}`);
    if (typeof sd.state !== 'object' || sd.state === null) {
      throw new TypeError(`Expected a Map of Tensors for "state" of AdamW.loadStateDict but received ${describe(sd.state)}`);
    }
    const entries: [string, unknown][] = sd.state instanceof Map ? [...sd.state] : Object.entries(sd.state);
    if (!Array.isArray(sd.groups) || sd.groups.length !== this.groups.length) {
      throw new Error(`AdamW.loadStateDict: the state dict has ${Array.isArray(sd.groups) ? sd.groups.length : describe(sd.groups)} groups but this optimizer has ${this.groups.length}`);
    }
    sd.groups.forEach((s, gi) => {
      if (typeof s !== 'object' || s === null) throw new TypeError(`Expected a group object for "groups[${gi}]" of AdamW.loadStateDict but received ${describe(s)}`);
      const n = this.groups[gi]!.params.length;
      if (s.numParams !== undefined && s.numParams !== n) {
        throw new Error(`AdamW.loadStateDict: group ${gi} of the state dict has ${s.numParams} parameters but this optimizer's has ${n}`);
      }
      checkHyper(s, `groups[${gi}]`, true);
    });
    const found = new Map<number, Partial<Record<(typeof STATE_KINDS)[number], Tensor>>>();
    for (const [key, t] of entries) {
      const m = /^(\d+)\.(exp_avg|exp_avg_sq|step)$/.exec(key);
      if (m === null) throw new Error(`AdamW.loadStateDict: unexpected state key "${key}" (expected <index>.exp_avg, .exp_avg_sq or .step)`);
      const i = Number(m[1]);
      const kind = m[2] as (typeof STATE_KINDS)[number];
      if (i >= this.flat.length) throw new Error(`AdamW.loadStateDict: state key "${key}" is for parameter ${i} but this optimizer has ${this.flat.length} parameters`);
      if (!(t instanceof Tensor)) throw new TypeError(`Expected a Tensor for state "${key}" of AdamW.loadStateDict but received ${describe(t)}`);
      const p = this.flat[i] as Tensor;
      const want = kind === 'step' ? [] : p.shape;
      if (kind === 'step' ? t.numel !== 1 : !sameShape(t.shape, want)) {
        throw new Error(`AdamW.loadStateDict: state "${key}" (parameter "${this.nameOf(i)}") has shape [${t.shape.join(', ')}] but expected [${want.join(', ')}]`);
      }
      if (!isFloating(t.dtype)) throw new TypeError(`Expected a floating point Tensor for state "${key}" of AdamW.loadStateDict but received ${t.dtype}`);
      const slot = found.get(i) ?? {};
      slot[kind] = t;
      found.set(i, slot);
    }
    const counts = new Map<number, number>();
    for (const [i, slot] of found) {
      const missing = STATE_KINDS.filter((k) => slot[k] === undefined);
      if (missing.length > 0) throw new Error(`AdamW.loadStateDict: parameter ${i} ("${this.nameOf(i)}") has no ${missing.map((k) => `"${i}.${k}"`).join(', ')}`);
      const count = slot.step!.item();
      if (!Number.isInteger(count) || count < 0) throw new Error(`AdamW.loadStateDict: "${i}.step" is ${count} but must be a non-negative integer`);
      counts.set(i, count);
    }
    // Checked: now change.
    sd.groups.forEach((s, gi) => {
      const g = this.groups[gi]!;
      g.lr = s.lr; g.betas = [s.betas[0], s.betas[1]]; g.eps = s.eps; g.weightDecay = s.weightDecay; g.lrScale = s.lrScale;
    });
    noGrad(() => scope(() => {
      this.state.forEach((st, i) => {
        if (st !== undefined && !found.has(i)) {
          disposeState(st);
          this.state[i] = undefined;
        }
      });
      for (const [i, slot] of found) {
        const st = this.state[i] ?? (this.state[i] = newState(this.flat[i] as Tensor));
        st.expAvg.copy_(slot.exp_avg!);
        st.expAvgSq.copy_(slot.exp_avg_sq!);
        st.step.copy_(slot.step!.reshape([]));
        st.count = counts.get(i) as number;
      }
    }));
  }

  /** Frees the optimizer state; the optimizer cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const st of this.state) if (st !== undefined) disposeState(st);
    this.state = [];
    for (const perDevice of this.deviceLr?.values() ?? []) for (const t of perDevice.values()) t.dispose();
    this.deviceLr = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private nameOf(i: number): string {
    let n = i;
    for (const g of this.groups) {
      if (n < g.names.length) return g.names[n] as string;
      n -= g.names.length;
    }
    return `param${i}`;
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('This AdamW has been disposed; it cannot be used any more');
  }
}

function newState(p: Tensor): ParamState {
  return {
    expAvg: aten.zeros_like(p, null, null, null, null, 'preserve').keep(),
    expAvgSq: aten.zeros_like(p, null, null, null, null, 'preserve').keep(),
    // float32 like torch's state["step"]; on the parameter's device, as the fused kernel needs.
    step: aten.zeros([], 'float32', null, p.device).keep(),
    count: 0,
  };
}

function disposeState(st: ParamState): void {
  st.expAvg.dispose();
  st.expAvgSq.dispose();
  st.step.dispose();
}

function fusedStep(b: Bucket, g: AdamWGroup, lr: Tensor | undefined): void {
  // Steps were incremented already: the kernel reads the new value for its bias corrections.
  if (lr === undefined) internal._fused_adamw_(b.params, b.grads, b.expAvgs, b.expAvgSqs, [], b.steps, g.lr, g.betas[0], g.betas[1], g.weightDecay, g.eps, false, false);
  else internal._fused_adamw__tensor_lr(b.params, b.grads, b.expAvgs, b.expAvgSqs, [], b.steps, lr, g.betas[0], g.betas[1], g.weightDecay, g.eps, false, false);
}

// torch/optim/adam.py _multi_tensor_adam (not capturable, decoupled decay),
// operation for operation, so both round the same way.
function foreachStep(b: Bucket, g: AdamWGroup): void {
  const { lr, eps, weightDecay } = g;
  const [beta1, beta2] = g.betas;
  if (weightDecay !== 0) internal._foreach_mul__Scalar(b.params, 1 - lr * weightDecay);
  internal._foreach_lerp__Scalar(b.expAvgs, b.grads, 1 - beta1);
  internal._foreach_mul__Scalar(b.expAvgSqs, beta2);
  internal._foreach_addcmul__Scalar(b.expAvgSqs, b.grads, b.grads, 1 - beta2);
  const stepSize = b.states.map((st) => -(lr / (1 - beta1 ** st.count)));
  const bc2Sqrt = b.states.map((st) => (1 - beta2 ** st.count) ** 0.5);
  const denom = internal._foreach_sqrt(b.expAvgSqs);
  internal._foreach_div__ScalarList(denom, bc2Sqrt);
  internal._foreach_add__Scalar(denom, eps);
  internal._foreach_addcdiv__ScalarList(b.params, b.expAvgs, denom, stepSize);
  for (const d of denom) d.dispose();
}
