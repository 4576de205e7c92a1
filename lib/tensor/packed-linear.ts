// Packed inference Linear layers: the weight is reordered once into a
// kernel's own layout, and an exact-erf GELU can follow inside the same call.
// Two kernels:
// - 'panels' (native/panel_linear.cc): extrema's AVX-512 product over
//   64-column panels. oneDNN's kernels are as fast, but every oneDNN call
//   rebuilds its primitive descriptor (10-20 us a layer), which dominates at
//   the few rows a served request has: the demo ViT's batch-1 forward pass
//   runs 13% faster with ours; from 16 images on, oneDNN's is 3-6% faster
//   (BENCHMARKS.md).
// - 'onednn': the dispatcher operators torch.compile's CPU freezing uses
//   (mkldnn::_reorder_linear_weight and mkldnn::_linear_pointwise), with the
//   GELU fused into the product; used where AVX-512 is missing.
// No autograd formula exists for either, so callers use them only with
// gradients off.
import { native } from '../native';
import { describe } from './dtype';
import { call, T, t, ot } from './op-runtime';
import { kernelOp } from './inference-kernels';
import { Tensor } from './tensor';

/** What a packed linear can apply to its output in the same pass. */
export type PackedActivation = 'none' | 'gelu';

/** The product a packed weight runs (see the top of this file). */
export type PackedKernel = 'panels' | 'onednn';

export const PACKED_KERNELS: readonly PackedKernel[] = ['panels', 'onednn'];

let reorderOp: number | null | undefined;
let pointwiseOp: number | null | undefined;

/** What packLinearWeight made: the kernel and the weight's shape, which the packed tensor alone does not tell. */
const packs = new WeakMap<Tensor, { kernel: PackedKernel; outFeatures: number; inFeatures: number }>();

function lookup(name: string, overload: string): number | null {
  try {
    return native.lookupOp(name, overload);
  } catch {
    return null; // a libtorch built without oneDNN (some ARM and custom builds)
  }
}

function onednnAvailable(): boolean {
  if (reorderOp === undefined) {
    reorderOp = lookup('mkldnn::_reorder_linear_weight', '');
    pointwiseOp = lookup('mkldnn::_linear_pointwise', '');
  }
  return reorderOp !== null && pointwiseOp !== null;
}

// Looked up when this module loads (kernelOp says why).
const packPanelsOp = kernelOp('extrema::pack_panels', 'extrema::panels_supported');
const panelLinearOp = kernelOp('extrema::panel_linear', 'extrema::panels_supported');

function panelsAvailable(): boolean {
  return packPanelsOp !== null && panelLinearOp !== null;
}

/** Whether `kernel` runs here: 'panels' needs an x86-64 CPU with AVX-512, 'onednn' a libtorch built with oneDNN. */
export function packedKernelAvailable(kernel: PackedKernel): boolean {
  return kernel === 'panels' ? panelsAvailable() : onednnAvailable();
}

/**
 * The kernel packLinearWeight uses by default: 'panels' where it runs, else
 * 'onednn'; null where neither runs. One default for serving and for the
 * evaluation loops, so a served request gets the features `extrema embed`
 * writes: the panels kernel computes each row alone, in the same order
 * whatever the batch. oneDNN's pulls ahead past about 8 images a batch (6%
 * at 256 on the demo encoder, BENCHMARKS.md): EXTREMA_PACKED_LINEAR=onednn
 * (or panels) in the environment picks one; naming one that does not run
 * here gives null, so layers stay unpacked rather than fail.
 */
export function defaultPackedKernel(): PackedKernel | null {
  const wanted = process.env.EXTREMA_PACKED_LINEAR;
  if (wanted !== undefined && wanted !== '') {
    if (!(PACKED_KERNELS as readonly string[]).includes(wanted)) {
      throw new TypeError(`Expected one of ${PACKED_KERNELS.join(', ')} for EXTREMA_PACKED_LINEAR but received ${describe(wanted)}`);
    }
    return packedKernelAvailable(wanted as PackedKernel) ? (wanted as PackedKernel) : null;
  }
  return PACKED_KERNELS.find(packedKernelAvailable) ?? null;
}

/** Whether packed linears run here at all (x86 and most official builds: yes). */
export function packedLinearAvailable(): boolean {
  return defaultPackedKernel() !== null;
}

/**
 * weight [out, in] (CPU, float32) reordered for a packed kernel (by default
 * defaultPackedKernel()): an opaque tensor that only packedLinear reads. It
 * is a copy: it does not follow later changes to `weight`.
 */
export function packLinearWeight(weight: Tensor, options: { kernel?: PackedKernel } = {}): Tensor {
  const kernel = options.kernel ?? defaultPackedKernel();
  if (kernel === null) throw new Error('packLinearWeight needs an AVX-512 CPU or a libtorch built with oneDNN; this one has neither');
  if (!PACKED_KERNELS.includes(kernel)) throw new TypeError(`Expected one of ${PACKED_KERNELS.join(', ')} for "kernel" of packLinearWeight but received ${describe(kernel)}`);
  if (!packedKernelAvailable(kernel)) {
    throw new Error(kernel === 'panels' ? 'packLinearWeight: the panels kernel needs an x86-64 CPU with AVX-512' : 'packLinearWeight: the onednn kernel needs a libtorch built with oneDNN (mkldnn)');
  }
  if (!(weight instanceof Tensor)) throw new TypeError(`Expected a Tensor for "weight" of packLinearWeight but received ${describe(weight)}`);
  if (weight.ndim !== 2) throw new RangeError(`Expected a 2-D weight [out, in] for packLinearWeight but received shape [${weight.shape.join(', ')}]`);
  if (weight.dtype !== 'float32') throw new TypeError(`Expected a float32 weight for packLinearWeight but received ${weight.dtype}`);
  if (weight.device !== 'cpu') throw new TypeError(`Expected a CPU weight for packLinearWeight but received one on ${weight.device}`);
  const id = t(weight, 'weight', 'packLinearWeight');
  const packed = T(kernel === 'panels' ? call(packPanelsOp!, id) : call(reorderOp!, id, null));
  const [outFeatures, inFeatures] = weight.shape as [number, number];
  packs.set(packed, { kernel, outFeatures, inFeatures });
  return packed;
}

/** The kernel a weight from packLinearWeight runs; null for any other tensor. */
export function packedKernelOf(packedWeight: Tensor): PackedKernel | null {
  return packs.get(packedWeight)?.kernel ?? null;
}

/**
 * activation(x W^T + b) with W from packLinearWeight; x [..., in] float32 on
 * the CPU. 'gelu' is the exact (erf) GELU.
 */
export function packedLinear(x: Tensor, packedWeight: Tensor, bias: Tensor | null, activation: PackedActivation = 'none'): Tensor {
  if (activation !== 'none' && activation !== 'gelu') throw new TypeError(`Expected 'none' or 'gelu' for "activation" of packedLinear but received ${describe(activation)}`);
  const w = t(packedWeight, 'packedWeight', 'packedLinear');
  const made = packs.get(packedWeight);
  if (made === undefined) throw new TypeError(`Expected a weight from packLinearWeight for "packedWeight" of packedLinear but received another tensor of shape [${packedWeight.shape.join(', ')}]`);
  const xid = t(x, 'x', 'packedLinear');
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== made.inFeatures) {
    throw new RangeError(`Expected an input [..., ${made.inFeatures}] for packedLinear but received shape [${x.shape.join(', ')}]`);
  }
  if (x.dtype !== 'float32' || x.device !== 'cpu') throw new TypeError(`Expected a float32 CPU input for packedLinear but received ${x.dtype} on ${x.device}`);
  const b = ot(bias, 'bias', 'packedLinear');
  if (bias !== null && bias !== undefined && (bias.ndim !== 1 || bias.shape[0] !== made.outFeatures || bias.dtype !== 'float32' || bias.device !== 'cpu')) {
    throw new TypeError(`Expected a float32 CPU bias of shape [${made.outFeatures}] for packedLinear but received ${bias.dtype} [${bias.shape.join(', ')}] on ${bias.device}`);
  }
  if (made.kernel === 'panels') return T(call(panelLinearOp!, xid, w, b, made.outFeatures, activation));
  return T(call(pointwiseOp!, xid, w, b, activation, [], activation === 'gelu' ? 'none' : ''));
}
