// oneDNN's inference linear, through the dispatcher operators that
// torch.compile's CPU freezing uses (mkldnn::_reorder_linear_weight and
// mkldnn::_linear_pointwise): the weight is reordered once into oneDNN's
// blocked layout, and an exact-erf GELU runs inside the matrix product
// instead of as a second pass over memory: 10-25% off a small ViT's forward
// pass on the CPU, more at larger batches (BENCHMARKS.md). No autograd
// formula exists for these operators, so callers use them only with
// gradients off.
import { native } from '../native';
import { describe } from './dtype';
import { call, T, t, ot } from './op-runtime';
import { Tensor } from './tensor';

/** What a packed linear can apply to its output in the same pass. */
export type PackedActivation = 'none' | 'gelu';

let reorderOp: number | null | undefined;
let pointwiseOp: number | null | undefined;

function lookup(name: string, overload: string): number | null {
  try {
    return native.lookupOp(name, overload);
  } catch {
    return null; // a libtorch built without oneDNN (some ARM and custom builds)
  }
}

/** Whether this libtorch has oneDNN's packed linear (x86 and most official builds do). */
export function packedLinearAvailable(): boolean {
  if (reorderOp === undefined) {
    reorderOp = lookup('mkldnn::_reorder_linear_weight', '');
    pointwiseOp = lookup('mkldnn::_linear_pointwise', '');
  }
  return reorderOp !== null && pointwiseOp !== null;
}

function requireAvailable(what: string): void {
  if (!packedLinearAvailable()) throw new Error(`${what} needs oneDNN (mkldnn), which this libtorch was built without`);
}

/**
 * weight [out, in] (CPU, float32) reordered for oneDNN: an opaque tensor
 * that only packedLinear reads. It is a copy: it does not follow later
 * changes to `weight`.
 */
export function packLinearWeight(weight: Tensor): Tensor {
  requireAvailable('packLinearWeight');
  if (!(weight instanceof Tensor)) throw new TypeError(`Expected a Tensor for "weight" of packLinearWeight but received ${describe(weight)}`);
  if (weight.ndim !== 2) throw new RangeError(`Expected a 2-D weight [out, in] for packLinearWeight but received shape [${weight.shape.join(', ')}]`);
  if (weight.dtype !== 'float32') throw new TypeError(`Expected a float32 weight for packLinearWeight but received ${weight.dtype}`);
  if (weight.device !== 'cpu') throw new TypeError(`Expected a CPU weight for packLinearWeight but received one on ${weight.device}`);
  return T(call(reorderOp!, t(weight, 'self', 'packLinearWeight'), null));
}

/**
 * activation(x W^T + b) with W from packLinearWeight; x [..., in] float32 on
 * the CPU. 'gelu' is the exact (erf) GELU.
 */
export function packedLinear(x: Tensor, packedWeight: Tensor, bias: Tensor | null, activation: PackedActivation = 'none'): Tensor {
  requireAvailable('packedLinear');
  if (activation !== 'none' && activation !== 'gelu') throw new TypeError(`Expected 'none' or 'gelu' for "activation" of packedLinear but received ${describe(activation)}`);
  return T(call(pointwiseOp!, t(x, 'X', 'packedLinear'), t(packedWeight, 'W', 'packedLinear'), ot(bias, 'B', 'packedLinear'),
    activation, [], activation === 'gelu' ? 'none' : ''));
}
