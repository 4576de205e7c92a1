// c10d's Reducer, the engine of torch's DistributedDataParallel, over a
// ProcessGroup: hooks on the parameters' gradient accumulators all-reduce a
// bucket of gradients as soon as all of its gradients exist, while backward
// goes on, and the averaged gradients are in .grad when backward returns.
import { native } from '../native';
import type { Tensor } from '../tensor/tensor';
import type { ProcessGroup } from './process-group';

export interface GradientReducerOptions {
  /** Bytes per bucket (default 25 MiB, as torch). */
  bucketBytes?: number;
  /** Bytes of the first bucket, the last layers' gradients, small so their all-reduce starts early (default 1 MiB, as torch). */
  firstBucketBytes?: number;
}

export class GradientReducer {
  private id: number | null;
  /** Buckets the parameters were grouped into. */
  readonly buckets: number;

  constructor(group: ProcessGroup, params: Tensor[], options: GradientReducerOptions = {}) {
    const bucketBytes = options.bucketBytes ?? 25 * 1024 * 1024;
    const firstBucketBytes = options.firstBucketBytes ?? 1024 * 1024;
    for (const [what, v] of [['bucketBytes', bucketBytes], ['firstBucketBytes', firstBucketBytes]] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`Expected a positive integer for "${what}" but received ${String(v)}`);
    }
    const device = params[0]?.device;
    const other = params.find((p) => p.device !== device);
    if (other !== undefined) throw new Error(`Expected every parameter on one device for the gradient reducer but received ${device} and ${other.device}`);
    if (device?.startsWith('cuda') && !group.nccl) throw new Error(`Expected CPU parameters for a group without NCCL but received ${device} ones; initialise the group with backend "nccl"`);
    const r = native.distReducerCreate(group._handle, params.map((p) => p.id), bucketBytes, firstBucketBytes);
    this.id = r.id;
    this.buckets = r.buckets;
  }

  private get handle(): number {
    if (this.id === null) throw new Error('This gradient reducer has been disposed');
    return this.id;
  }

  /** Makes the next backward all-reduce (and average) the gradients; without it they stay local. */
  prepareForBackward(): void {
    native.distReducerPrepare(this.handle);
  }

  /** Removes the hooks. */
  dispose(): void {
    if (this.id === null) return;
    native.distReducerDispose(this.id);
    this.id = null;
  }
}
