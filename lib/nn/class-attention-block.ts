import { Module } from './module';
import { LayerNorm } from './layer-norm';
import { ClassAttention } from './class-attention';
import { Mlp } from './mlp';
import { dropPath } from './dropout';
import { cat } from '../tensor/functional';
import { full } from '../tensor/creation';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { BlockOptions } from './block';
import { probability } from '../checks';

export interface ClassAttentionBlockOptions extends BlockOptions {
  /** Initial value of the layer-scale vectors gamma_1 and gamma_2 (CaiT; 0.1 in ExtreMA). */
  layerScaleInit?: number;
}

/**
 * CaiT class-attention block with layer scale. Only the class token is
 * updated; the patch tokens are read, never changed:
 *   u = [cls, x];  cls += gamma_1 * CA(norm1(u));  cls += gamma_2 * mlp(norm2(cls))
 */
export class ClassAttentionBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: ClassAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  gamma_1: Tensor;
  gamma_2: Tensor;
  readonly dropPath: number;

  constructor(dim: number, numHeads: number, options: ClassAttentionBlockOptions = {}) {
    super();
    this.dropPath = probability(options.dropPath ?? 0, '"dropPath" of ClassAttentionBlock', { highOpen: true });
    const eps = options.normEps ?? 1e-6;
    const generator = options.generator;
    const init = options.layerScaleInit ?? 0.1;
    if (typeof init !== 'number' || !Number.isFinite(init)) throw new TypeError(`Expected a finite number for "layerScaleInit" but received ${String(init)}`);
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, eps));
    this.attn = this.registerModule('attn', new ClassAttention(dim, numHeads, {
      qkvBias: options.qkvBias, attnDrop: options.attnDrop, projDrop: options.drop, generator,
    }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, eps));
    this.mlp = this.registerModule('mlp', new Mlp(dim, Math.round(dim * (options.mlpRatio ?? 4)), { drop: options.drop, generator }));
    this.gamma_1 = this.registerParameter('gamma_1', full([dim], init));
    this.gamma_2 = this.registerParameter('gamma_2', full([dim], init));
  }

  /** x: patch tokens [B, N, D]; cls: [B, 1, D]. Returns the new class token. */
  forward(x: Tensor, cls: Tensor): Tensor {
    return this.run(x, cls, false).out;
  }

  forwardWithWeights(x: Tensor, cls: Tensor): { out: Tensor; weights: Tensor } {
    return this.run(x, cls, true) as { out: Tensor; weights: Tensor };
  }

  private run(x: Tensor, cls: Tensor, withWeights: boolean): { out: Tensor; weights?: Tensor } {
    return scope(() => {
      const u = this.norm1.forward(cat([cls, x], 1));
      const a = withWeights ? this.attn.forwardWithWeights(u) : { out: this.attn.forward(u), weights: undefined };
      const c = cls.add(dropPath(a.out.mul(this.gamma_1), this.dropPath, this.training));
      const out = c.add(dropPath(this.mlp.forward(this.norm2.forward(c)).mul(this.gamma_2), this.dropPath, this.training));
      return a.weights === undefined ? { out } : { out, weights: a.weights };
    });
  }
}
