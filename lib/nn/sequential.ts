import { Module, type TensorModule } from './module';
import type { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import * as aten from '../tensor/ops.generated';

/** Runs its children in order; they are named '0', '1', … as in torch.nn.Sequential. */
export class Sequential extends Module implements TensorModule {
  readonly layers: TensorModule[];

  constructor(...layers: TensorModule[]) {
    super();
    layers.forEach((m, i) => {
      if (typeof (m as Partial<TensorModule>)?.forward !== 'function') throw new TypeError(`Expected a Module with forward() at position ${i} of Sequential but received ${describe(m)}`);
      this.registerModule(String(i), m);
    });
    this.layers = layers;
  }

  /**
   * Intermediate handles are freed as soon as the next layer has used them
   * (autograd keeps what backward needs on its own).
   */
  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.layers) {
      const next = layer.forward(h);
      if (h !== x) h.dispose();
      h = next;
    }
    return h === x ? aten.alias(x) : h;
  }

  get length(): number {
    return this.layers.length;
  }
}
