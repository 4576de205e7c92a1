// SGD with momentum, numerically torch.optim.SGD (no maximize): torch's
// multi-tensor update (_multi_tensor_sgd), operation for operation, so both
// round the same way:
//   g = grad + weightDecay * p
//   buf = g (first step) | momentum * buf + (1 - dampening) * g
//   g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
// The momentum buffer is created on a parameter's first step (a copy of its
// gradient, as torch does), kept past every scope and freed by dispose().
// With `lars: true` it is LARS as MAE's util/lars.py (the optimizer of the
// authors' linear probe with --lars): for parameters with more than one
// dimension g = (grad + weightDecay * p) * trust, trust = trustCoefficient *
// |p| / |g| (1 where either norm is 0); vectors (biases) take their gradient
// unscaled and undecayed; then the momentum update above.
import * as aten from '../tensor/ops.generated';
import * as internal from '../tensor/ops.internal.generated';
import { Tensor } from '../tensor/tensor';
import { describe, isFloating } from '../tensor/dtype';
import { bool, fail, nonNegativeFinite } from '../checks';
import { scope } from '../tensor/scope';
import { noGrad } from '../autograd';
import type { ParamGroup } from './param-groups';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  /** layer-wise trust ratio scaling (LARS), default false */
  lars?: boolean;
  /** LARS's trust coefficient (default 0.001) */
  trustCoefficient?: number;
}

/** A group as the optimizer holds it: hyperparameters are read at every step() and may be changed between steps. */
export interface SGDGroup {
  readonly params: readonly Tensor[];
  readonly names: readonly string[];
  lr: number;
  lrScale: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  lars: boolean;
  trustCoefficient: number;
}

export interface SGDGroupState {
  lr: number;
  lrScale: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  lars: boolean;
  trustCoefficient: number;
  numParams: number;
}

/**
 * What stateDict() returns and loadStateDict() takes: `state` keys are
 * `<flat index>.momentum_buffer` (flat indices count parameters across
 * groups in order); parameters without a buffer (no step yet, or momentum 0)
 * have no entry, as in torch.
 */
export interface SGDStateDict {
  state: Map<string, Tensor> | Record<string, Tensor>;
  groups: (Omit<SGDGroupState, 'numParams'> & { numParams?: number })[];
}

const where = (name: string) => `"${name}" of SGD`;
const nonNegative = (v: unknown, name: string) => nonNegativeFinite(v, where(name));

function checkHyper(g: { lr: unknown; lrScale: unknown; momentum: unknown; dampening: unknown; weightDecay: unknown; nesterov: unknown; lars: unknown; trustCoefficient: unknown }, label: string): void {
  nonNegative(g.lr, `${label}.lr`);
  nonNegative(g.lrScale, `${label}.lrScale`);
  nonNegative(g.momentum, `${label}.momentum`);
  nonNegative(g.dampening, `${label}.dampening`);
  nonNegative(g.weightDecay, `${label}.weightDecay`);
  bool(g.nesterov, where(`${label}.nesterov`));
  // torch: "Nesterov momentum requires a momentum and zero dampening"
  if (g.nesterov && (g.momentum === 0 || g.dampening !== 0)) {
    throw new RangeError(`Nesterov momentum needs a positive momentum and zero dampening (${where(label)} has momentum ${String(g.momentum)}, dampening ${String(g.dampening)})`);
  }
  bool(g.lars, where(`${label}.lars`));
  nonNegative(g.trustCoefficient, `${label}.trustCoefficient`);
  if (g.lars && (g.nesterov || g.dampening !== 0)) {
    throw new RangeError(`LARS has neither Nesterov momentum nor dampening (${where(label)} has nesterov ${String(g.nesterov)}, dampening ${String(g.dampening)})`);
  }
}

export class SGD {
  readonly groups: SGDGroup[];
  private readonly flat: Tensor[] = [];
  private buffers: (Tensor | undefined)[] = [];
  private disposed = false;

  constructor(params: Tensor[] | ParamGroup[], options: SGDOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`Expected options { lr } for SGD but received ${describe(options)}`);
    const defaults = {
      lr: nonNegative(options.lr, 'lr'),
      momentum: nonNegative(options.momentum ?? 0, 'momentum'),
      dampening: nonNegative(options.dampening ?? 0, 'dampening'),
      weightDecay: nonNegative(options.weightDecay ?? 0, 'weightDecay'),
      nesterov: bool(options.nesterov ?? false, where('nesterov')),
      lars: bool(options.lars ?? false, where('lars')),
      trustCoefficient: nonNegative(options.trustCoefficient ?? 0.001, 'trustCoefficient'),
    };
    if (!Array.isArray(params)) fail('an array of Tensors or parameter groups', where('params'), params, TypeError);
    const groups: ParamGroup[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    const seen = new Set<Tensor>();
    this.groups = groups.map((g, gi) => {
      const label = `groups[${gi}]`;
      if (typeof g !== 'object' || g === null || g instanceof Tensor || !Array.isArray(g.params)) fail('a Tensor or a parameter group { params }', where(`params[${gi}]`), g, TypeError);
      if (g.names !== undefined && (!Array.isArray(g.names) || g.names.length !== g.params.length)) fail(`${g.params.length} names`, where(`${label}.names`), g.names, TypeError);
      const names = g.params.map((p, pi) => {
        const name = g.names?.[pi] ?? `param${this.flat.length}`;
        const what = `${label}.params[${pi}] ("${name}")`;
        if (!(p instanceof Tensor)) fail('a Tensor', where(what), p, TypeError);
        if (p.isDisposed) throw new Error(`Parameter ${what} of SGD has been disposed`);
        if (!isFloating(p.dtype)) throw new TypeError(`Expected a floating point Tensor for ${where(what)} but received ${p.dtype}`);
        if (!p.requiresGrad) throw new Error(`Parameter ${what} of SGD does not require grad; leave frozen tensors out of the optimizer`);
        if (!p.isLeaf) throw new Error(`Parameter ${what} of SGD is not a leaf tensor; optimize the tensor the graph starts from`);
        if (seen.has(p)) throw new Error(`Parameter ${what} of SGD appears more than once`);
        seen.add(p);
        this.flat.push(p);
        return name;
      });
      const group: SGDGroup = {
        params: g.params.slice(), names,
        lr: g.lr ?? defaults.lr, lrScale: g.lrScale ?? 1, weightDecay: g.weightDecay ?? defaults.weightDecay,
        momentum: defaults.momentum, dampening: defaults.dampening, nesterov: defaults.nesterov,
        lars: defaults.lars, trustCoefficient: defaults.trustCoefficient,
      };
      checkHyper(group, label);
      return group;
    });
    if (this.flat.length === 0) throw new Error('SGD got no parameters to optimize');
    this.buffers = new Array(this.flat.length).fill(undefined);
  }

  parameters(): Tensor[] {
    return this.flat.slice();
  }

  /** Sets every group's lr to lr * lrScale. */
  setLr(lr: number): void {
    nonNegative(lr, 'lr');
    for (const g of this.groups) g.lr = lr * g.lrScale;
  }

  /** Drops every parameter's gradient, as torch's zero_grad(set_to_none=True). */
  zeroGrad(): void {
    this.checkLive();
    for (const p of this.flat) p.grad = null;
  }

  /** One update of every parameter that has a gradient; the others are skipped. */
  step(): void {
    this.checkLive();
    this.groups.forEach((g, gi) => checkHyper(g, `groups[${gi}]`));
    noGrad(() => scope(() => {
      let flatIndex = 0;
      for (const g of this.groups) {
        const params: Tensor[] = [];
        const grads: Tensor[] = [];
        const slots: number[] = [];
        for (const p of g.params) {
          const i = flatIndex++;
          if (p.grad === null) continue;
          params.push(p);
          grads.push(p.grad);
          slots.push(i);
        }
        if (params.length > 0) this.update(g, params, grads, slots);
      }
    }));
  }

  // Runs inside step()'s scope: every tensor made here is freed with it unless kept.
  private update(g: SGDGroup, params: Tensor[], grads: Tensor[], slots: number[]): void {
    let d = g.lars ? larsDirections(g, params, grads)
      : g.weightDecay !== 0 ? internal._foreach_add_List(grads, params, g.weightDecay) : grads;
    if (g.momentum !== 0) {
      const bufs = slots.map((i) => this.buffers[i]);
      if (bufs.every((b) => b !== undefined)) {
        internal._foreach_mul__Scalar(bufs as Tensor[], g.momentum);
        internal._foreach_add__List(bufs as Tensor[], d, 1 - g.dampening);
      } else {
        slots.forEach((i, k) => {
          const b = this.buffers[i];
          if (b === undefined) this.buffers[i] = d[k]!.clone().keep();
          else b.mul_(g.momentum).add_(d[k]!, 1 - g.dampening);
        });
      }
      const current = slots.map((i) => this.buffers[i] as Tensor);
      if (g.nesterov) {
        // torch adds into the gradients in place; a copy keeps p.grad as the caller left it when there is no weight decay.
        if (d === grads) d = internal._foreach_clone(grads);
        internal._foreach_add__List(d, current, g.momentum);
      } else {
        d = current;
      }
    }
    internal._foreach_add__List(params, d, -g.lr);
  }

  /** The momentum buffers (new handles on the live tensors, no copy) and the groups' hyperparameters. */
  stateDict(): { state: Map<string, Tensor>; groups: SGDGroupState[] } {
    this.checkLive();
    const state = new Map<string, Tensor>();
    this.buffers.forEach((b, i) => {
      if (b !== undefined) state.set(`${i}.momentum_buffer`, b.detach());
    });
    const groups = this.groups.map((g) => ({
      lr: g.lr, lrScale: g.lrScale, momentum: g.momentum, dampening: g.dampening, weightDecay: g.weightDecay, nesterov: g.nesterov,
      lars: g.lars, trustCoefficient: g.trustCoefficient, numParams: g.params.length,
    }));
    return { state, groups };
  }

  /** Restores a stateDict() (values copied into this optimizer's own tensors); everything is checked before anything changes. */
  loadStateDict(sd: SGDStateDict): void {
    this.checkLive();
    if (typeof sd !== 'object' || sd === null) fail('a state dict { state, groups }', 'SGD.loadStateDict', sd, TypeError);
    if (typeof sd.state !== 'object' || sd.state === null) fail('a Map of Tensors', '"state" of SGD.loadStateDict', sd.state, TypeError);
    if (!Array.isArray(sd.groups) || sd.groups.length !== this.groups.length) {
      throw new Error(`SGD.loadStateDict: the state dict has ${Array.isArray(sd.groups) ? sd.groups.length : describe(sd.groups)} groups but this optimizer has ${this.groups.length}`);
    }
    sd.groups.forEach((s, gi) => {
      if (typeof s !== 'object' || s === null) fail('a group object', `"groups[${gi}]" of SGD.loadStateDict`, s, TypeError);
      const n = this.groups[gi]!.params.length;
      if (s.numParams !== undefined && s.numParams !== n) throw new Error(`SGD.loadStateDict: group ${gi} of the state dict has ${s.numParams} parameters but this optimizer's has ${n}`);
      checkHyper(s, `groups[${gi}]`);
    });
    const entries: [string, unknown][] = sd.state instanceof Map ? [...sd.state] : Object.entries(sd.state);
    const found = new Map<number, Tensor>();
    for (const [key, t] of entries) {
      const m = /^(\d+)\.momentum_buffer$/.exec(key);
      if (m === null) throw new Error(`SGD.loadStateDict: unexpected state key "${key}" (expected <index>.momentum_buffer)`);
      const i = Number(m[1]);
      if (i >= this.flat.length) throw new Error(`SGD.loadStateDict: state key "${key}" is for parameter ${i} but this optimizer has ${this.flat.length} parameters`);
      if (!(t instanceof Tensor)) fail('a Tensor', `state "${key}" of SGD.loadStateDict`, t, TypeError);
      const want = this.flat[i]!.shape;
      if (t.shape.length !== want.length || t.shape.some((v, k) => v !== want[k])) {
        throw new Error(`SGD.loadStateDict: state "${key}" has shape [${t.shape.join(', ')}] but expected [${want.join(', ')}]`);
      }
      found.set(i, t);
    }
    sd.groups.forEach((s, gi) => {
      const g = this.groups[gi]!;
      g.lr = s.lr; g.lrScale = s.lrScale; g.momentum = s.momentum; g.dampening = s.dampening; g.weightDecay = s.weightDecay; g.nesterov = s.nesterov;
      g.lars = s.lars; g.trustCoefficient = s.trustCoefficient;
    });
    noGrad(() => {
      this.buffers.forEach((b, i) => {
        if (b !== undefined && !found.has(i)) {
          b.dispose();
          this.buffers[i] = undefined;
        }
      });
      for (const [i, t] of found) {
        const b = this.buffers[i] ?? (this.buffers[i] = scope(() => this.flat[i]!.detach().clone()).keep());
        b.copy_(t);
      }
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.buffers) b?.dispose();
    this.buffers = [];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('This SGD has been disposed; it cannot be used any more');
  }
}

// MAE's LARS direction, per parameter (the trust ratio needs each tensor's own norms).
function larsDirections(g: SGDGroup, params: Tensor[], grads: Tensor[]): Tensor[] {
  return params.map((p, k) => {
    const grad = grads[k]!;
    if (p.ndim <= 1) return grad;
    const dp = grad.add(p, g.weightDecay);
    const pn = p.norm();
    const un = dp.norm();
    const one = aten.ones_like(pn, null, null, null, null, null);
    const q = aten.where_self(pn.gt(0), aten.where_self(un.gt(0), pn.mul(g.trustCoefficient).div(un), one), one);
    return dp.mul(q);
  });
}
