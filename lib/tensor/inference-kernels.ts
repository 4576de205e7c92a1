// extrema's own inference kernels: which of the attention and LayerNorm
// kernels (native/small_attention.cc, native/row_layer_norm.cc) run, and the
// lookup of every extrema:: kernel operator, the panels Linear product's
// too. nn/ decides when a pass is an inference pass; the packed Linear
// kernels have their own switch (EXTREMA_PACKED_LINEAR, ./packed-linear).
import { native } from '../native';
import { describe } from './dtype';

export type InferenceKernels = 'extrema' | 'aten';

/**
 * The kernels inference layers take: 'extrema' (the default) runs ours
 * where they run (x86-64 with AVX-512) and ATen's elsewhere;
 * EXTREMA_INFERENCE_KERNELS=aten in the environment asks for ATen's
 * everywhere, to compare or to rule ours out.
 */
export function inferenceKernels(): InferenceKernels {
  const wanted = process.env.EXTREMA_INFERENCE_KERNELS;
  if (wanted === undefined || wanted === '' || wanted === 'extrema') return 'extrema';
  if (wanted === 'aten') return 'aten';
  throw new TypeError(`Expected "extrema" or "aten" for EXTREMA_INFERENCE_KERNELS but received ${describe(wanted)}`);
}

/**
 * The operator `name` where its CPU check `supported` says it runs, else
 * null. Called when a kernel's module loads: asked later, the check could
 * run while an operator trace records, and its answer (a value, not a
 * tensor) would make the trace refuse.
 */
export function kernelOp(name: string, supported: string): number | null {
  try {
    return native.call(native.lookupOp(supported, '')) === true ? native.lookupOp(name, '') : null;
  } catch {
    return null; // an addon built before the kernel existed
  }
}
