import { Module } from './module';
import { Linear } from './linear';
import { dropout, scaledDotProductAttention } from '../tensor/functional';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { positiveInt, probability } from '../checks';
import { inferencePass } from './inference-pack';
import { smallAttention, smallAttentionEnabled, smallAttentionFits } from '../tensor/small-attention';

export interface AttentionOptions {
  qkvBias?: boolean;
  attnDrop?: number;
  projDrop?: number;
  generator?: Generator;
}

export interface AttentionResult {
  out: Tensor;
  /** softmax(q k^T / sqrt(d)), [B, heads, queries, keys] */
  weights: Tensor;
}

/**
 * softmax(q k^T / sqrt(d)) v per head. With weights requested it is computed
 * explicitly; otherwise through the fused scaled_dot_product_attention, or,
 * in an inference pass (inferencePass) without dropout, through the
 * small-sequence kernel (tensor/small-attention.ts) where it runs: the
 * forward passes of serving and evaluation.
 */
export function multiHeadAttention(q: Tensor, k: Tensor, v: Tensor, dropP: number, withWeights: boolean): { out: Tensor; weights?: Tensor } {
  if (!withWeights && dropP === 0 && inferencePass(q) && smallAttentionEnabled() && smallAttentionFits(q, k, v)) {
    return { out: smallAttention(q, k, v) };
  }
  if (!withWeights) return { out: scaledDotProductAttention(q, k, v, { dropoutP: dropP }) };
  const scale = 1 / Math.sqrt(q.size(-1));
  const weights = q.mul(scale).matmul(k.mT).softmax(-1);
  return { out: dropout(weights, dropP, dropP > 0).matmul(v), weights };
}

export function checkHeads(dim: number, numHeads: number, where: string): number {
  positiveInt(dim, `"dim" of ${where}`);
  positiveInt(numHeads, `"numHeads" of ${where}`);
  if (dim % numHeads !== 0) throw new RangeError(`${where}: dim ${dim} is not divisible by numHeads ${numHeads}`);
  return dim / numHeads;
}

/** Multi-head self-attention with one fused qkv projection (keys qkv, proj). */
export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly attnDrop: number;
  readonly projDrop: number;

  constructor(readonly dim: number, readonly numHeads: number, options: AttentionOptions = {}) {
    super();
    this.headDim = checkHeads(dim, numHeads, 'Attention');
    this.attnDrop = probability(options.attnDrop ?? 0, '"attnDrop" of Attention', { highOpen: true });
    this.projDrop = probability(options.projDrop ?? 0, '"projDrop" of Attention', { highOpen: true });
    this.qkv = this.registerModule('qkv', new Linear(dim, dim * 3, { bias: options.qkvBias ?? true, generator: options.generator }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { generator: options.generator }));
  }

  forward(x: Tensor): Tensor {
    return this.run(x, false).out;
  }

  forwardWithWeights(x: Tensor): AttentionResult {
    return this.run(x, true) as AttentionResult;
  }

  private run(x: Tensor, withWeights: boolean): { out: Tensor; weights?: Tensor } {
    return scope(() => {
      const [b, n] = x.shape as [number, number, number];
      // [B, N, 3D] -> [3, B, heads, N, headDim]
      const [q, k, v] = this.qkv.forward(x).reshape(b, n, 3, this.numHeads, this.headDim).permute(2, 0, 3, 1, 4).unbind(0) as [Tensor, Tensor, Tensor];
      const { out, weights } = multiHeadAttention(q, k, v, this.training ? this.attnDrop : 0, withWeights);
      const merged = out.transpose(1, 2).reshape(b, n, this.dim);
      const y = dropout(this.proj.forward(merged), this.projDrop, this.training);
      return weights === undefined ? { out: y } : { out: y, weights };
    });
  }
}
