// Data parallelism over a ProcessGroup: every rank holds the same weights,
// computes gradients on its own share of the batch, and the gradients are
// averaged before the optimizer step, so all ranks take the same step.
//
// Two ways to average, same result:
// - 'overlap' (default): c10d's Reducer, torch DDP's own engine
//   (lib/runtime/gradient-reducer.ts), all-reduces buckets of gradients
//   (1 MiB first, then 25 MiB, in reverse registration order) while backward
//   is still running; call beforeBackward() before the backward that should
//   sync.
// - 'after': once backward has returned, the same buckets flattened into one
//   tensor each and all in flight at once (afterBackward() / syncGradients()).
import { cat } from '../tensor/functional';
import { zerosLike } from '../tensor/creation';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { ProcessGroup } from '../runtime/process-group';
import { GradientReducer } from '../runtime/gradient-reducer';

export interface DdpOptions {
  /** Bytes of gradients per all-reduce (default 25 MiB, as torch). */
  bucketBytes?: number;
  /** 'overlap' (default): all-reduce during backward (c10d's Reducer); 'after': after backward returns. */
  mode?: 'overlap' | 'after';
}

const BYTES: Record<string, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2 };

export class DistributedDataParallel {
  /** The 'after' mode's buckets: reverse registration order, one dtype per bucket (the Reducer of the 'overlap' mode makes its own the same way, with a 1 MiB first bucket). */
  readonly buckets: Tensor[][];
  readonly mode: 'overlap' | 'after';
  private syncing = true;
  private readonly reducer: GradientReducer | null;

  constructor(readonly group: ProcessGroup, readonly params: Tensor[], options: DdpOptions = {}) {
    const limit = options.bucketBytes ?? 25 * 1024 * 1024;
    if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`Expected a positive integer "bucketBytes" but received ${String(limit)}`);
    this.mode = options.mode ?? 'overlap';
    if (this.mode !== 'overlap' && this.mode !== 'after') throw new TypeError(`Expected "overlap" or "after" for the DDP mode but received ${String(this.mode)}`);
    this.reducer = this.mode === 'overlap' && group.size > 1 ? new GradientReducer(group, params, { bucketBytes: limit }) : null;
    this.buckets = [];
    let bucket: Tensor[] = [];
    let bytes = 0;
    for (const p of [...params].reverse()) {
      const size = p.numel * (BYTES[p.dtype] ?? 4);
      if (bucket.length > 0 && (bytes + size > limit || bucket[0]!.dtype !== p.dtype)) {
        this.buckets.push(bucket);
        bucket = [];
        bytes = 0;
      }
      bucket.push(p);
      bytes += size;
    }
    if (bucket.length > 0) this.buckets.push(bucket);
  }

  /** Copies rank 0's values of `tensors` (parameters, buffers, a teacher) to every rank. */
  async broadcastFromRoot(tensors: Tensor[]): Promise<void> {
    await Promise.all(tensors.map((t) => this.group.broadcast(t, 0)));
  }

  /**
   * Runs `fn` with gradient syncing off: the micro-batches of an accumulated
   * step but the last only add to the local gradients (torch's no_sync()).
   */
  async noSync<T>(fn: () => T | Promise<T>): Promise<T> {
    const before = this.syncing;
    this.syncing = false;
    try {
      return await fn();
    } finally {
      this.syncing = before;
    }
  }

  /** Whether the next backward's gradients are averaged (false inside noSync). */
  get syncEnabled(): boolean {
    return this.syncing;
  }

  /** Call before a backward whose gradients should be averaged (the overlap mode's hooks then fire during it). */
  beforeBackward(): void {
    if (this.syncing && this.reducer !== null) this.reducer.prepareForBackward();
  }

  /** Call after that backward: in the 'after' mode this is where the gradients are averaged. */
  async afterBackward(): Promise<void> {
    if (this.reducer === null) await this.syncGradients();
  }

  /** Removes the overlap mode's hooks. */
  dispose(): void {
    this.reducer?.dispose();
  }

  /**
   * Averages every parameter's gradient over the ranks, in place. A parameter
   * that got no gradient on this rank counts as zeros (and gets them), so all
   * ranks reduce the same buckets. Does nothing inside noSync().
   */
  async syncGradients(): Promise<void> {
    if (!this.syncing || this.group.size === 1) return;
    const flats = this.buckets.map((bucket) => scope(() => {
      const grads = bucket.map((p) => {
        let g = p.grad;
        if (g === null) {
          p.grad = zerosLike(p);
          g = p.grad!;
        }
        return g;
      });
      const flat = cat(grads.map((g) => g.reshape([-1])), 0);
      return { flat: flat.keep(), grads: grads.map((g) => g.keep()) };
    }));
    try {
      await Promise.all(flats.map(({ flat }) => this.group.allReduce(flat, 'avg')));
      for (const { flat, grads } of flats) {
        scope(() => {
          let offset = 0;
          for (const g of grads) {
            g.copy_(flat.narrow(0, offset, g.numel).view(g.shape));
            offset += g.numel;
          }
        });
      }
    } finally {
      for (const { flat, grads } of flats) {
        flat.dispose();
        for (const g of grads) g.dispose();
      }
    }
  }

  /**
   * Throws unless `tensors` hold bitwise the same values on every rank (the
   * EMA teacher's check): each rank's per-tensor sums, all-gathered and
   * compared with rank 0's. `what` names the tensors in the error.
   */
  async assertSameOnAllRanks(tensors: Tensor[], what: string): Promise<void> {
    const sums = scope(() => cat(tensors.map((t) => t.to({ dtype: 'float64' }).sum().reshape([1])), 0).keep());
    try {
      const all = await this.group.allGather(sums);
      try {
        const rows = all.map((t) => t.toTypedArray<'float64'>());
        for (let r = 1; r < rows.length; r++) {
          const i = rows[r]!.findIndex((v, k) => !Object.is(v, rows[0]![k]));
          if (i >= 0) throw new Error(`${what} differ between rank 0 and rank ${r} at tensor ${i} (sum ${rows[0]![i]} vs ${rows[r]![i]}): the ranks have drifted apart`);
        }
      } finally {
        for (const t of all) t.dispose();
      }
    } finally {
      sums.dispose();
    }
  }
}
