import { Module } from './module';
import { Linear } from './linear';
import { dropout } from '../tensor/functional';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import { checkHeads, multiHeadAttention, type AttentionOptions, type AttentionResult } from './attention';
import { probability } from '../checks';

/**
 * CaiT class attention: the class token (position 0 of u = [cls, patches])
 * is the only query; keys and values come from all of u. Separate q, k, v
 * projections; the output is the updated class token only, [B, 1, D].
 */
export class ClassAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly attnDrop: number;
  readonly projDrop: number;

  constructor(readonly dim: number, readonly numHeads: number, options: AttentionOptions = {}) {
    super();
    this.headDim = checkHeads(dim, numHeads, 'ClassAttention');
    this.attnDrop = probability(options.attnDrop ?? 0, '"attnDrop" of ClassAttention', { highOpen: true });
    this.projDrop = probability(options.projDrop ?? 0, '"projDrop" of ClassAttention', { highOpen: true });
    const bias = options.qkvBias ?? true;
    this.q = this.registerModule('q', new Linear(dim, dim, { bias, generator: options.generator }));
    this.k = this.registerModule('k', new Linear(dim, dim, { bias, generator: options.generator }));
    this.v = this.registerModule('v', new Linear(dim, dim, { bias, generator: options.generator }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { generator: options.generator }));
  }

  forward(u: Tensor): Tensor {
    return this.run(u, false).out;
  }

  /** weights: [B, heads, 1, 1 + N], the class token's attention over [cls, patches]. */
  forwardWithWeights(u: Tensor): AttentionResult {
    return this.run(u, true) as AttentionResult;
  }

  private run(u: Tensor, withWeights: boolean): { out: Tensor; weights?: Tensor } {
    return scope(() => {
      const [b, n] = u.shape as [number, number, number];
      const heads = (t: Tensor, len: number) => t.reshape(b, len, this.numHeads, this.headDim).transpose(1, 2);
      const q = heads(this.q.forward(u.narrow(1, 0, 1)), 1);
      const k = heads(this.k.forward(u), n);
      const v = heads(this.v.forward(u), n);
      const { out, weights } = multiHeadAttention(q, k, v, this.training ? this.attnDrop : 0, withWeights);
      const cls = out.transpose(1, 2).reshape(b, 1, this.dim);
      const y = dropout(this.proj.forward(cls), this.projDrop, this.training);
      return weights === undefined ? { out: y } : { out: y, weights };
    });
  }
}
