import { Module } from './module';
import { LayerNorm } from './layer-norm';
import { Attention } from './attention';
import { Mlp } from './mlp';
import { dropPath } from './dropout';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { probability } from '../checks';

export interface BlockOptions {
  mlpRatio?: number;
  qkvBias?: boolean;
  drop?: number;
  attnDrop?: number;
  dropPath?: number;
  normEps?: number;
  generator?: Generator;
}

/** Pre-norm transformer block without layer scale: x += attn(norm1(x)); x += mlp(norm2(x)). */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly dropPath: number;

  constructor(dim: number, numHeads: number, options: BlockOptions = {}) {
    super();
    this.dropPath = probability(options.dropPath ?? 0, '"dropPath" of Block', { highOpen: true });
    const eps = options.normEps ?? 1e-6;
    const generator = options.generator;
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, eps));
    this.attn = this.registerModule('attn', new Attention(dim, numHeads, {
      qkvBias: options.qkvBias, attnDrop: options.attnDrop, projDrop: options.drop, generator,
    }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, eps));
    this.mlp = this.registerModule('mlp', new Mlp(dim, Math.round(dim * (options.mlpRatio ?? 4)), { drop: options.drop, generator }));
  }

  forward(x: Tensor): Tensor {
    return this.run(x, false).out;
  }

  /** Also returns the self-attention weights [B, heads, N, N]. */
  forwardWithWeights(x: Tensor): { out: Tensor; weights: Tensor } {
    return this.run(x, true) as { out: Tensor; weights: Tensor };
  }

  private run(x: Tensor, withWeights: boolean): { out: Tensor; weights?: Tensor } {
    return scope(() => {
      const normed = this.norm1.forward(x);
      const a = withWeights ? this.attn.forwardWithWeights(normed) : { out: this.attn.forward(normed), weights: undefined };
      const h = x.add(dropPath(a.out, this.dropPath, this.training));
      const out = h.add(dropPath(this.mlp.forward(this.norm2.forward(h)), this.dropPath, this.training));
      return a.weights === undefined ? { out } : { out, weights: a.weights };
    });
  }
}
