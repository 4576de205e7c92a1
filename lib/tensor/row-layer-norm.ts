// LayerNorm over the last dimension at inference (native/row_layer_norm.cc):
// one AVX-512 pass a row, without the mean and inverse standard deviation
// ATen's layer_norm also computes and allocates for autograd: 0.68-0.93x
// PyTorch's time on the demo ViT's rows (npm run bench:inference-kernels).
// Same formula as ATen's, so values agree to float rounding. No
// autograd formula: nn/layer-norm.ts uses it with gradients off
// (./inference-kernels switches it off).
import { describe } from './dtype';
import { inferenceKernels, kernelOp } from './inference-kernels';
import { call, T, t } from './op-runtime';
import type { Tensor } from './tensor';

const layerNormOp = kernelOp('extrema::row_layer_norm', 'extrema::row_layer_norm_supported');

/** Whether the kernel runs here (x86-64 with AVX-512). */
export function rowLayerNormAvailable(): boolean {
  return layerNormOp !== null;
}

/** Whether inference LayerNorm takes this kernel: it runs here, and inferenceKernels() is 'extrema'. */
export function rowLayerNormEnabled(): boolean {
  return layerNormOp !== null && inferenceKernels() === 'extrema';
}

/** Whether x [..., n], weight and bias [n] are inputs rowLayerNorm takes (float32, CPU). */
export function rowLayerNormFits(x: Tensor, weight: Tensor, bias: Tensor): boolean {
  const n = x.shape[x.ndim - 1];
  return x.ndim >= 1 && [x, weight, bias].every((p) => p.dtype === 'float32' && p.device === 'cpu')
    && [weight, bias].every((p) => p.ndim === 1 && p.shape[0] === n);
}

/** (x - mean) / sqrt(var + eps) * weight + bias over the last dimension of x (biased variance, as F.layer_norm). */
export function rowLayerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const ids = [t(x, 'x', 'rowLayerNorm'), t(weight, 'weight', 'rowLayerNorm'), t(bias, 'bias', 'rowLayerNorm')];
  if (layerNormOp === null) throw new Error('rowLayerNorm needs an x86-64 CPU with AVX-512');
  if (!rowLayerNormFits(x, weight, bias)) {
    throw new TypeError(`Expected a float32 CPU x [..., n] with weight and bias [n] for rowLayerNorm but received x ${x.dtype} [${x.shape.join(', ')}] on ${x.device}, `
      + `weight ${weight.dtype} [${weight.shape.join(', ')}] on ${weight.device}, bias ${bias.dtype} [${bias.shape.join(', ')}] on ${bias.device}`);
  }
  if (!(Number.isFinite(eps) && eps >= 0)) throw new RangeError(`Expected a finite eps >= 0 for rowLayerNorm but received ${describe(eps)}`);
  return T(call(layerNormOp, ...ids, eps));
}
