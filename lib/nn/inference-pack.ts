// A module's weight packed for inference (packLinearWeight), kept beside the
// weight and remade when the weight changes. Linear and the patch
// embedding's projection (a linear map of flattened patches) both keep one,
// as PackableModules; nn.packForInference packs every PackableModule.
import { isGradEnabled, noGrad } from '../autograd';
import { isAutocastEnabled } from '../runtime/device-runtime';
import { defaultPackedKernel, packLinearWeight, type PackedKernel } from '../tensor/packed-linear';
import type { Tensor } from '../tensor/tensor';
import { Module } from './module';

/**
 * Whether a forward pass on x may take extrema's inference kernels (packed
 * Linear layers, tensor/small-attention, tensor/row-layer-norm): gradients
 * off, a float32 CPU input, and no CPU autocast, under which ATen computes
 * in the autocast dtype and the kernels would not.
 */
export function inferencePass(x: Tensor): boolean {
  return x.dtype === 'float32' && x.device === 'cpu' && !isGradEnabled() && !isAutocastEnabled('cpu');
}

/** The packed copy, and which weight (object and in-place version) it was made from. */
interface Packed {
  weight: Tensor;
  version: number;
  from: Tensor;
}

export class InferencePack {
  private packed: Packed | null = null;
  private kernel: PackedKernel | null = null;

  /**
   * weight() is the module's current weight; asMatrix views it as the
   * [out, in] matrix to pack (the identity for a Linear).
   */
  constructor(private readonly weight: () => Tensor, private readonly asMatrix: (w: Tensor) => Tensor = (w) => w) {}

  /**
   * Packs the current weight for `kernel` (kept for the repacks that
   * follow weight changes); false where packing does not
   * apply (not a float32 CPU weight, no packed kernel here, or an inference
   * tensor, which keeps no version to notice changes by).
   */
  pack(kernel: PackedKernel | null): boolean {
    this.unpack();
    const w = this.weight();
    if (kernel === null || w.dtype !== 'float32' || w.device !== 'cpu') return false;
    const version = w.version;
    if (version < 0) return false;
    // Without gradients: the copy must not hang on the weight's autograd graph.
    const weight = noGrad(() => {
      const matrix = this.asMatrix(w);
      try {
        return packLinearWeight(matrix, { kernel });
      } finally {
        if (matrix !== w) matrix.dispose();
      }
    }).keep();
    this.packed = { weight, version, from: w };
    this.kernel = kernel;
    return true;
  }

  unpack(): void {
    this.packed?.weight.dispose();
    this.packed = null;
  }

  /** The kernel of the packed copy; null when unpacked. */
  get packedKernel(): PackedKernel | null {
    return this.packed === null ? null : this.kernel;
  }

  get isPacked(): boolean {
    return this.packed !== null;
  }

  /** The packed weight to use for this input, remade if stale; null for the plain path. */
  weightFor(x: Tensor): Tensor | null {
    const p = this.packed;
    if (p === null || !inferencePass(x)) return null;
    // Replaced (a user assignment) or written in place since: pack the weight as it is now, if it qualifies.
    const w = this.weight();
    if (p.from !== w || p.from.isDisposed || w.version !== p.version) return this.pack(this.kernel) ? this.packed!.weight : null;
    return p.weight;
  }
}

/** A module with one weight that can run packed for inference (Linear, PatchProjection). */
export abstract class PackableModule extends Module {
  protected abstract readonly packed: InferencePack;

  /**
   * Keeps a packed copy of the weight for inference (packLinearWeight with
   * `kernel`, by default defaultPackedKernel()): from then on a forward
   * pass with gradients off, on a float32 CPU input outside CPU autocast,
   * runs the packed product (the same values to float rounding). The copy
   * is remade when the weight changes (in place or replaced); with
   * gradients on, or elsewhere, the plain path runs. Returns whether packing
   * applies here (a float32 CPU weight, a packed kernel that runs here, a
   * weight that is not an inference tensor).
   */
  packForInference(kernel: PackedKernel | null = defaultPackedKernel()): boolean {
    return this.packed.pack(kernel);
  }

  /** Drops the packed copy (forward runs the plain path again). */
  unpack(): void {
    this.packed.unpack();
  }

  get isPacked(): boolean {
    return this.packed.isPacked;
  }

  /** The kernel the packed copy runs; null when unpacked. */
  get packedKernel(): PackedKernel | null {
    return this.packed.packedKernel;
  }

  protected override releaseCaches(): void {
    this.unpack();
  }
}
