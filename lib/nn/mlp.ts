import { Module } from './module';
import { Linear } from './linear';
import { dropout } from '../tensor/functional';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { probability } from '../checks';

export interface MlpOptions {
  outFeatures?: number;
  drop?: number;
  generator?: Generator;
}

/** fc1 -> GELU (exact) -> dropout -> fc2 -> dropout, the transformer feed-forward. */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: number;

  constructor(inFeatures: number, hiddenFeatures: number, options: MlpOptions = {}) {
    super();
    this.drop = probability(options.drop ?? 0, '"drop" of Mlp', { highOpen: true });
    this.fc1 = this.registerModule('fc1', new Linear(inFeatures, hiddenFeatures, { generator: options.generator }));
    this.fc2 = this.registerModule('fc2', new Linear(hiddenFeatures, options.outFeatures ?? inFeatures, { generator: options.generator }));
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = dropout(this.fc1.forwardGelu(x), this.drop, this.training);
      return dropout(this.fc2.forward(h), this.drop, this.training);
    });
  }
}
