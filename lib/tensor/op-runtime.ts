// Helpers the generated operator wrappers (ops.generated.ts and
// ops.internal.generated.ts) call: lazy op lookup, argument checks done in JS
// before anything crosses, and wrapping results. Kept tiny because they run
// on every op.
import { native, type Handle } from '../native';
import { assertDType, describe, dtypeCode, type DType } from './dtype';
import { assertDevice } from './device';
import { Tensor } from './tensor';
import type { Generator } from '../runtime/generator';

export type Scalar = number | boolean;
export type MemoryFormat = 'contiguous' | 'preserve' | 'channels_last' | 'channels_last_3d';

const opIds: number[] = [];

/** Resolves a dispatcher operator once; generated code passes a fixed slot. */
export function op(slot: number, name: string, overload: string): number {
  const id = opIds[slot];
  if (id !== undefined) return id;
  const found = native.lookupOp(name, overload);
  opIds[slot] = found;
  return found;
}

export const call = native.call;

function tensorError(x: unknown, arg: string, opName: string): TypeError {
  return new TypeError(`Expected a Tensor for "${arg}" of ${opName} but received ${describe(x)}`);
}

/** A required tensor argument. */
export function t(x: Tensor, arg: string, opName: string): Handle {
  if (!(x instanceof Tensor)) throw tensorError(x, arg, opName);
  return x.id;
}

/** An optional tensor argument. */
export function ot(x: Tensor | null | undefined, arg: string, opName: string): Handle | null | undefined {
  if (x === null || x === undefined) return x;
  if (!(x instanceof Tensor)) throw tensorError(x, arg, opName);
  return x.id;
}

export function tl(xs: readonly Tensor[], arg: string, opName: string): Handle[] {
  if (!Array.isArray(xs)) throw new TypeError(`Expected an array of Tensors for "${arg}" of ${opName} but received ${describe(xs)}`);
  const out = new Array<Handle>(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = t(xs[i] as Tensor, `${arg}[${i}]`, opName);
  return out;
}

export function otl(xs: readonly (Tensor | null)[], arg: string, opName: string): (Handle | null)[] {
  if (!Array.isArray(xs)) throw new TypeError(`Expected an array of Tensors or nulls for "${arg}" of ${opName} but received ${describe(xs)}`);
  return xs.map((x, i) => (x === null || x === undefined ? null : t(x, `${arg}[${i}]`, opName)));
}

export function dt(d: DType | null | undefined, arg: string): number | null | undefined {
  if (d === null || d === undefined) return d;
  return dtypeCode(assertDType(d, `"${arg}"`));
}

const MEMORY_FORMATS: Record<MemoryFormat, number> = { contiguous: 0, preserve: 1, channels_last: 2, channels_last_3d: 3 };

export function mf(m: MemoryFormat | null | undefined, arg: string): number | null | undefined {
  if (m === null || m === undefined) return m;
  const code = MEMORY_FORMATS[m];
  if (code === undefined) throw new TypeError(`Expected a memory format (${Object.keys(MEMORY_FORMATS).join(', ')}) for "${arg}" but received ${describe(m)}`);
  return code;
}

export function dv(d: string | null | undefined, arg: string): string | null | undefined {
  if (d === null || d === undefined) return d;
  return assertDevice(d, `"${arg}"`);
}

export function gn(g: Generator | null | undefined): number | null | undefined {
  if (g === null || g === undefined) return g;
  return g.id;
}

/** Wraps a returned handle. */
export function T(id: unknown): Tensor {
  return Tensor._wrap(id as Handle);
}

export function Ts(ids: unknown): Tensor[] {
  return (ids as Handle[]).map((id) => Tensor._wrap(id));
}

/** An in-place op returns its mutated argument: hand back the same JS object. */
export function M<X extends Tensor>(x: X): X {
  x._touch();
  return x;
}
