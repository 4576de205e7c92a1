// BatchNorm1d as torch.nn.BatchNorm1d: inputs [N, C] or [N, C, L], per-channel
// statistics over the other dimensions. In training the batch statistics
// normalise (biased variance) and the running statistics move by `momentum`
// toward the batch's mean and unbiased variance; in eval the running
// statistics normalise. The linear probe's head starts with one of these
// without affine parameters (the authors' main_lincls).
import { Module } from './module';
import { ones, zeros } from '../tensor/creation';
import * as aten from '../tensor/ops.generated';
import { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import { bool, positiveFinite, positiveInt, probability } from '../checks';
import { noGrad } from '../autograd';

export interface BatchNorm1dOptions {
  /** added to the variance (default 1e-5) */
  eps?: number;
  /** weight of the batch in the running statistics (default 0.1) */
  momentum?: number;
  /** learned per-channel scale (1) and shift (0) (default true) */
  affine?: boolean;
}

export class BatchNorm1d extends Module {
  readonly eps: number;
  readonly momentum: number;
  readonly affine: boolean;
  weight: Tensor | null;
  bias: Tensor | null;
  running_mean: Tensor;
  running_var: Tensor;
  /** int64 scalar, counted in training mode as torch does (saved in the state dict under torch's name). */
  num_batches_tracked: Tensor;

  constructor(readonly numFeatures: number, options: BatchNorm1dOptions = {}) {
    super();
    positiveInt(numFeatures, '"numFeatures" of BatchNorm1d');
    this.eps = positiveFinite(options.eps ?? 1e-5, '"eps" of BatchNorm1d');
    this.momentum = probability(options.momentum ?? 0.1, '"momentum" of BatchNorm1d');
    this.affine = bool(options.affine ?? true, '"affine" of BatchNorm1d');
    this.weight = this.affine ? this.registerParameter('weight', ones([numFeatures])) : null;
    this.bias = this.affine ? this.registerParameter('bias', zeros([numFeatures])) : null;
    this.running_mean = this.registerBuffer('running_mean', zeros([numFeatures]));
    this.running_var = this.registerBuffer('running_var', ones([numFeatures]));
    this.num_batches_tracked = this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
  }

  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) throw new TypeError(`Expected a Tensor for the input of BatchNorm1d but received ${describe(x)}`);
    if ((x.ndim !== 2 && x.ndim !== 3) || x.shape[1] !== this.numFeatures) {
      throw new RangeError(`Expected an input [N, ${this.numFeatures}] or [N, ${this.numFeatures}, L] for BatchNorm1d but received [${x.shape.join(', ')}]`);
    }
    if (this.training) {
      // torch refuses this too: one value per channel has no variance.
      const perChannel = x.numel / this.numFeatures;
      if (perChannel <= 1) throw new RangeError(`Expected more than 1 value per channel when training BatchNorm1d but received input [${x.shape.join(', ')}]`);
      noGrad(() => this.num_batches_tracked.add_(1));
    }
    // aten updates the running statistics in place (unbiased variance) in training mode.
    return aten.batch_norm(x, this.weight, this.bias, this.running_mean, this.running_var, this.training, this.momentum, this.eps, false);
  }
}
