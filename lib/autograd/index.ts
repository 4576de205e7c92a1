// Grad mode scopes and functional autograd.
import { native } from '../native';
import { Tensor } from '../tensor/tensor';

/** Runs fn between enter() and exit(enter's result); fn must be synchronous (`notSync` is the error otherwise), since these modes are per thread. */
function inThreadMode<S, T>(enter: () => S, exit: (saved: S) => void, fn: () => T, notSync: string): T {
  const saved = enter();
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError(notSync);
    return result;
  } finally {
    exit(saved);
  }
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  return inThreadMode(() => native.setGradEnabled(enabled), (previous) => native.setGradEnabled(previous), fn, 'noGrad()/enableGrad() take a synchronous function (grad mode is per thread)');
}

/** Runs fn without recording operations for autograd. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/**
 * Runs fn in libtorch's inference mode: like noGrad, and also without the
 * version counters and autograd metadata noGrad still keeps (about 10% of a
 * small model's forward pass). Tensors made inside are inference tensors:
 * read them, copy them out, but do not use them in autograd or change them
 * in place afterwards (libtorch refuses). Synchronous only: the mode is per
 * thread.
 */
export function inferenceMode<T>(fn: () => T): T {
  return inThreadMode(() => native.inferenceModeEnter(), (depth) => native.inferenceModeExit(depth), fn, 'inferenceMode() takes a synchronous function (the mode is per thread)');
}

/** Runs fn with autograd recording on, even inside noGrad. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export function setGradEnabled(enabled: boolean): void {
  native.setGradEnabled(enabled);
}

export interface GradOptions {
  gradOutputs?: (Tensor | null)[];
  retainGraph?: boolean;
  createGraph?: boolean;
  allowUnused?: boolean;
}

function handles(xs: readonly Tensor[], what: string): number[] {
  if (!Array.isArray(xs)) throw new TypeError(`Expected an array of Tensors for "${what}"`);
  return xs.map((x, i) => {
    if (!(x instanceof Tensor)) throw new TypeError(`Expected a Tensor for "${what}[${i}]"`);
    return x.id;
  });
}

/** Gradients of outputs with respect to inputs, without touching .grad (torch.autograd.grad). */
export function grad(outputs: Tensor | readonly Tensor[], inputs: Tensor | readonly Tensor[], options: GradOptions = {}): (Tensor | null)[] {
  const outs = handles(Array.isArray(outputs) ? outputs : [outputs as Tensor], 'outputs');
  const ins = handles(Array.isArray(inputs) ? inputs : [inputs as Tensor], 'inputs');
  const gradOutputs = options.gradOutputs ? options.gradOutputs.map((g) => (g === null ? null : g.id)) : null;
  const result = native.grad(outs, ins, gradOutputs, options.retainGraph, options.createGraph ?? false, options.allowUnused ?? false);
  return result.map((h) => (h === null ? null : Tensor._wrap(h)));
}

/** Accumulates gradients of several outputs into the leaves' .grad (torch.autograd.backward). */
export function backward(outputs: readonly Tensor[], gradients?: readonly (Tensor | null)[], options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
  native.backward(handles(outputs, 'outputs'), gradients ? gradients.map((g) => (g === null ? null : g.id)) : null,
    options.retainGraph, options.createGraph ?? false, null);
}
