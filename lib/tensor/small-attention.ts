// softmax(q k^T * scale) v for short sequences at inference
// (native/small_attention.cc): an AVX-512 kernel without the fixed cost of
// ATen's CPU flash attention, which is built for long sequences: 0.79-0.92x
// PyTorch's time on the demo ViT's calls (npm run bench:inference-kernels). No
// autograd formula, no mask, no dropout: callers use it with gradients off
// (nn/attention.ts decides; ./inference-kernels switches it off).
import { describe } from './dtype';
import { inferenceKernels, kernelOp } from './inference-kernels';
import { call, T, t } from './op-runtime';
import type { Tensor } from './tensor';

/** The kernel's limits: keys and head features per (image, head). */
export const SMALL_ATTENTION_MAX_KEYS = 512;
export const SMALL_ATTENTION_MAX_HEAD_DIM = 256;

const attentionOp = kernelOp('extrema::small_attention', 'extrema::small_attention_supported');

/** Whether the kernel runs here (x86-64 with AVX-512). */
export function smallAttentionAvailable(): boolean {
  return attentionOp !== null;
}

/** Whether inference attention takes this kernel: it runs here, and inferenceKernels() is 'extrema'. */
export function smallAttentionEnabled(): boolean {
  return attentionOp !== null && inferenceKernels() === 'extrema';
}

/** Whether q [B, H, Nq, D], k and v [B, H, Nk, D] are inputs smallAttention takes. */
export function smallAttentionFits(q: Tensor, k: Tensor, v: Tensor): boolean {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) return false;
  for (const x of [q, k, v]) if (x.dtype !== 'float32' || x.device !== 'cpu') return false;
  const [b, h, , d] = q.shape as [number, number, number, number];
  const [kb, kh, nk, kd] = k.shape as [number, number, number, number];
  return kb === b && kh === h && kd === d && v.shape.every((n, i) => n === k.shape[i])
    && nk >= 1 && nk <= SMALL_ATTENTION_MAX_KEYS && d >= 1 && d <= SMALL_ATTENTION_MAX_HEAD_DIM;
}

/**
 * softmax(q k^T * scale) v (scale default 1 / sqrt(D)), the values of
 * scaledDotProductAttention without mask or dropout to float rounding.
 * q [B, H, Nq, D], k and v [B, H, Nk, D], float32 on the CPU; the result
 * [B, H, Nq, D] is laid out [B, Nq, H, D], so merging its heads is a view.
 */
export function smallAttention(q: Tensor, k: Tensor, v: Tensor, scale: number | null = null): Tensor {
  const ids = [t(q, 'q', 'smallAttention'), t(k, 'k', 'smallAttention'), t(v, 'v', 'smallAttention')];
  if (attentionOp === null) throw new Error('smallAttention needs an x86-64 CPU with AVX-512');
  if (!smallAttentionFits(q, k, v)) {
    throw new TypeError(`Expected float32 CPU tensors q [B, H, Nq, D], k and v [B, H, Nk, D] with 1 <= Nk <= ${SMALL_ATTENTION_MAX_KEYS} and D <= ${SMALL_ATTENTION_MAX_HEAD_DIM} for smallAttention `
      + `but received q ${q.dtype} [${q.shape.join(', ')}] on ${q.device}, k ${k.dtype} [${k.shape.join(', ')}] on ${k.device}, v ${v.dtype} [${v.shape.join(', ')}] on ${v.device}`);
  }
  if (scale !== null && !Number.isFinite(scale)) throw new TypeError(`Expected a finite number or null for "scale" of smallAttention but received ${describe(scale)}`);
  return T(call(attentionOp!, ...ids, scale));
}
