// Batches of a dataset, in one of two modes:
// - 'train': a seeded shuffle per epoch (a pure function of (seed, epoch)),
//   drop-last, micro-batches grouped into optimizer steps; a file that fails
//   to decode is reported and replaced by an unread item of the epoch. A run
//   resumed at step k asks for step k and sees the same batches.
// - 'eval': every item of [start, end) in order, the last batch short; a file
//   that fails to decode stops the pass (strict, the default) or is reported
//   and left out.
// Several batches are assembled ahead while the caller works, into reused
// buffers; a dataset with readInto (packs) reads a batch straight into its
// buffer, any other is read item by item. Pixels are
// handed over as uint8 [B, C, H, W] on the loader's device (through pinned
// memory with a non-blocking copy on CUDA). Tensors are made only when a
// batch is handed over, so stopping early leaks nothing.
import { Generator } from '../runtime/generator';
import { randperm, fromTypedArray } from '../tensor/creation';
import type { Tensor } from '../tensor/tensor';
import type { Device } from '../tensor/device';
import type { ImageDataset } from './dataset';
import { intInRange, oneOf, positiveInt } from '../checks';

export type LoaderMode = 'train' | 'eval';

export interface LoaderOptions {
  /** Images per batch (per micro-batch when accumulating). */
  batchSize: number;
  /** Default 'train'. */
  mode?: LoaderMode;
  /** Train: seed of the per-epoch shuffle (default 0). */
  seed?: number;
  /** Train: micro-batches per optimizer step (default 1); see steps(). */
  accumulate?: number;
  /** Eval: the first item (default 0) and one past the last (default count). */
  start?: number;
  end?: number;
  /** Batches assembled ahead (default 2). */
  prefetch?: number;
  /** Items decoded at once per batch (default 8). */
  concurrency?: number;
  device?: Device;
  /**
   * Stop at a file that fails to decode, with an error naming it. Default:
   * false in train mode (the file is reported to onSkip, never read again, and
   * replaced), true in eval mode (with false it is reported and left out).
   */
  strict?: boolean;
  onSkip?: (name: string, error: Error) => void;
  /**
   * Train: this process's share of a data-parallel run (DistributedSampler's
   * semantics): every rank draws the same permutation per epoch, keeps the
   * first floor(count / size) * size items of it and reads the strided slice
   * rank, rank + size, ...; so ranks read equal, disjoint counts, and step s of
   * all ranks together covers the items a single process of batch
   * batchSize * size reads at step s.
   */
  shard?: { rank: number; size: number };
}

export interface Batch {
  /** uint8 [B, C, H, W] on the loader's device; the caller disposes it. */
  images: Tensor;
  /** int64 [B] class indices, or null for unlabelled data; the caller disposes it. */
  labels: Tensor | null;
  /** Dataset indices of the items. */
  indices: number[];
  /** Position of the batch in its pass (train: micro-batch in the epoch). */
  step: number;
}

/** One optimizer step: its position in the epoch and its `accumulate` micro-batches. */
export interface TrainStep {
  step: number;
  batches: AsyncGenerator<Batch, void, undefined>;
}

interface Assembled {
  pixels: Uint8Array;
  indices: number[];
  /** The pool's buffer behind the pixels, given back once they are copied into a tensor. */
  buffer: Uint8Array;
}

/**
 * Batch buffers of one pass, reused: a batch's pixels are copied into a
 * tensor when it is handed over, so its buffer is free again then. At most
 * `keep` free buffers are held, and none after the pass.
 */
class BufferPool {
  private readonly free: Uint8Array[] = [];

  constructor(private readonly bytes: number, private readonly keep: number) {}

  take(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(this.bytes);
  }

  give(buffer: Uint8Array): void {
    if (this.free.length < this.keep) this.free.push(buffer);
  }
}

const positive = (v: unknown, what: string) => positiveInt(v, `"${what}" of the data loader`);

/** Disposes a batch's tensors. */
export function disposeBatch(batch: Batch): void {
  batch.images.dispose();
  batch.labels?.dispose();
}

export class DataLoader {
  readonly mode: LoaderMode;
  readonly batchSize: number;
  readonly accumulate: number;
  private readonly seed: number;
  private readonly start: number;
  private readonly end: number;
  private readonly prefetch: number;
  private readonly concurrency: number;
  private readonly device: Device;
  private readonly strict: boolean;
  private readonly onSkip: ((name: string, error: Error) => void) | undefined;
  private readonly shard: { rank: number; size: number };
  private readonly bad = new Set<number>();

  constructor(readonly dataset: ImageDataset, options: LoaderOptions) {
    this.mode = oneOf(options.mode ?? 'train', '"mode" of the data loader', ['train', 'eval'] as const);
    this.batchSize = positive(options.batchSize, 'batchSize');
    this.accumulate = positive(options.accumulate ?? 1, 'accumulate');
    this.seed = options.seed ?? 0;
    intInRange(this.seed, '"seed" of the data loader', 0);
    this.start = options.start ?? 0;
    this.end = options.end ?? dataset.count;
    if (!Number.isSafeInteger(this.start) || !Number.isSafeInteger(this.end) || this.start < 0 || this.end > dataset.count || this.start > this.end) {
      throw new RangeError(`Expected 0 <= start <= end <= ${dataset.count} for the data loader but received start ${this.start}, end ${this.end}`);
    }
    if (this.mode === 'train' && (this.start !== 0 || this.end !== dataset.count)) throw new RangeError('start and end select items of an eval pass; a train loader reads the whole dataset');
    if (this.mode === 'eval' && this.accumulate !== 1) throw new RangeError('accumulate groups micro-batches of a train loader; an eval loader has none');
    this.prefetch = positive(options.prefetch ?? 2, 'prefetch');
    this.concurrency = positive(options.concurrency ?? 8, 'concurrency');
    this.device = options.device ?? 'cpu';
    this.strict = options.strict ?? this.mode === 'eval';
    this.onSkip = options.onSkip;
    const shard = options.shard ?? { rank: 0, size: 1 };
    const size = positiveInt(shard.size, '"shard.size" of the data loader');
    this.shard = { rank: intInRange(shard.rank, '"shard.rank" of the data loader', 0, size - 1), size };
    if (this.mode === 'eval' && size !== 1) throw new RangeError('shard splits the items of a train loader; an eval pass reads [start, end) whole');
    if (this.mode === 'train' && this.stepsPerEpoch() === 0) {
      const need = this.batchSize * this.accumulate;
      const ranks = size > 1 ? ` on each of ${size} ranks (${Math.floor(dataset.count / size)} images each)` : '';
      throw new RangeError(`The dataset has ${dataset.count} images, fewer than one step of ${need}${ranks} (batch ${this.batchSize}${this.accumulate > 1 ? ` x ${this.accumulate} accumulated` : ''}, last incomplete batch dropped)`);
    }
  }

  /** Batches per pass: train drops the last incomplete one, eval keeps it. */
  batchesPerEpoch(): number {
    const n = this.mode === 'train' ? Math.floor(this.dataset.count / this.shard.size) : this.end - this.start;
    return this.mode === 'train' ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Optimizer steps per epoch (train): whole groups of `accumulate` batches. */
  stepsPerEpoch(): number {
    return Math.floor(this.batchesPerEpoch() / this.accumulate);
  }

  /**
   * The epoch's item order: train, a permutation drawn from (seed, epoch)
   * alone (this rank's strided slice of it when sharded); eval, start..end-1.
   */
  order(epoch: number): Int32Array {
    if (this.mode === 'eval') return Int32Array.from({ length: this.end - this.start }, (_, i) => this.start + i);
    const g = Generator.create(this.seed * 1_000_003 + epoch);
    const perm = randperm(this.dataset.count, { generator: g });
    const all = perm.toTypedArray<'int64'>();
    perm.dispose();
    const { rank, size } = this.shard;
    return Int32Array.from({ length: Math.floor(all.length / size) }, (_, i) => Number(all[rank + i * size]!));
  }

  /** An eval pass: every item of [start, end) in order. */
  batches(): AsyncGenerator<Batch, void, undefined> {
    if (this.mode !== 'eval') throw new Error("batches() is the eval pass; a train loader is read with steps(epoch, fromStep)");
    return this.pass(0, 0, this.batchesPerEpoch());
  }

  /**
   * The optimizer steps of one epoch from step `fromStep` on (a resumed run
   * passes where it stopped). Each step's micro-batches are read in its inner
   * loop; those the caller leaves unread are disposed before the next step.
   */
  async *steps(epoch: number, fromStep = 0): AsyncGenerator<TrainStep, void, undefined> {
    if (this.mode !== 'train') throw new Error("steps() groups the batches of a train loader; an eval loader is read with batches()");
    const total = this.stepsPerEpoch();
    if (!Number.isSafeInteger(fromStep) || fromStep < 0 || fromStep > total) throw new RangeError(`Expected a step in [0, ${total}] to start epoch ${epoch} at but received ${String(fromStep)}`);
    const micro = this.pass(epoch, fromStep * this.accumulate, total * this.accumulate);
    try {
      for (let step = fromStep; step < total; step++) {
        let taken = 0;
        const group = async function* (accumulate: number): AsyncGenerator<Batch, void, undefined> {
          while (taken < accumulate) {
            taken++;
            const next = await micro.next();
            if (next.done) return;
            yield next.value;
          }
        };
        yield { step, batches: group(this.accumulate) };
        for (; taken < this.accumulate; taken++) {
          const next = await micro.next();
          if (!next.done) disposeBatch(next.value);
        }
      }
    } finally {
      await micro.return(undefined);
    }
  }

  /** Batches [first, last) of the epoch's order, assembled `prefetch` ahead. */
  private async *pass(epoch: number, first: number, last: number): AsyncGenerator<Batch, void, undefined> {
    const order = this.order(epoch);
    // Train: items past the batches this epoch reads replace ones that fail to decode.
    let spare = Math.min(this.batchesPerEpoch() * this.batchSize, order.length);
    const nextSpare = (): number | null => {
      while (this.mode === 'train' && spare < order.length) {
        const i = order[spare++]!;
        if (!this.bad.has(i)) return i;
      }
      return null;
    };
    const queue: Promise<Assembled>[] = [];
    const { size, channels } = this.dataset;
    // the prefetched batches and the one being handed over
    const pool = new BufferPool(this.batchSize * size * size * channels, this.prefetch + 1);
    let next = first;
    const fill = () => {
      while (queue.length < this.prefetch && next < last) {
        const p = this.assemble(order, next++, epoch, nextSpare, pool);
        p.catch(() => {}); // awaited in order below; an abandoned prefetch must not be an unhandled rejection
        queue.push(p);
      }
    };
    fill();
    for (let step = first; step < last; step++) {
      const { pixels, indices, buffer } = await queue.shift()!;
      fill();
      if (indices.length === 0) { // an eval batch whose every file was skipped
        pool.give(buffer);
        continue;
      }
      const images = this.toDevice(pixels, indices.length);
      pool.give(buffer); // copied into the tensor
      yield { images, labels: this.labelsOf(indices), indices, step };
    }
  }

  private async assemble(order: Int32Array, step: number, epoch: number, nextSpare: () => number | null, pool: BufferPool): Promise<Assembled> {
    const { size, channels } = this.dataset;
    const item = size * size * channels;
    const from = step * this.batchSize;
    const wanted = Math.min(this.batchSize, order.length - from);
    const buffer = pool.take();
    const pixels = buffer.subarray(0, wanted * item);
    const spare = (): number => {
      const index = nextSpare();
      if (index === null) throw new Error(`Ran out of readable images to fill batch ${step} of epoch ${epoch} (${this.bad.size} skipped)`);
      return index;
    };
    // Items known not to decode are replaced (train) or left out (eval) up front.
    const planned = Array.from(order.subarray(from, from + wanted), (i): number | null => (!this.bad.has(i) ? i : this.mode === 'train' ? spare() : null));
    if (this.dataset.readInto !== undefined) {
      const indices = planned.filter((i): i is number => i !== null);
      try {
        await this.dataset.readInto(indices, buffer.subarray(0, indices.length * item));
        return { pixels: buffer.subarray(0, indices.length * item), indices, buffer };
      } catch {
        // Read again item by item below: that names the item that fails, and
        // skips or replaces it as configured.
      }
    }
    const slots: (number | null)[] = new Array<number | null>(wanted).fill(null);
    let cursor = 0;
    const worker = async (): Promise<void> => {
      while (cursor < wanted) {
        const slot = cursor++;
        let index = planned[slot] ?? null;
        while (index !== null) {
          if (!this.bad.has(index)) {
            try {
              pixels.set(await this.dataset.read(index), slot * item);
              slots[slot] = index;
              break;
            } catch (e) {
              if (this.strict) throw new Error(`Cannot read ${this.mode === 'train' ? 'training ' : ''}image ${this.dataset.name(index)}: ${(e as Error).message}`, { cause: e });
              this.bad.add(index);
              this.onSkip?.(this.dataset.name(index), e as Error);
            }
          }
          if (this.mode === 'eval') break;
          index = spare();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, wanted) }, worker));
    const filled = slots.filter((s): s is number => s !== null);
    if (filled.length === wanted) return { pixels, indices: filled, buffer };
    // Eval items left out: close the gaps so the batch is contiguous.
    const packed = new Uint8Array(filled.length * item);
    let k = 0;
    slots.forEach((s, slot) => {
      if (s !== null) packed.set(pixels.subarray(slot * item, (slot + 1) * item), item * k++);
    });
    return { pixels: packed, indices: filled, buffer };
  }

  private toDevice(pixels: Uint8Array, count: number): Tensor {
    const { size, channels } = this.dataset;
    // uint8 HWC goes to the device as it is (through pinned memory, without a
    // host sync: see fromTypedArray) and is transposed there: on the host the
    // HWC -> CHW copy cost about 0.5 ms per 224 px image, the bottleneck of
    // reading packs.
    const hwc = fromTypedArray(pixels, [count, size, size, channels], { device: this.device });
    const chw = hwc.permute(0, 3, 1, 2);
    const out = chw.contiguous();
    hwc.dispose();
    chw.dispose();
    return out;
  }

  private labelsOf(indices: number[]): Tensor | null {
    const labels = this.dataset.labels;
    if (labels === null) return null;
    // to a GPU through pinned memory, without waiting for the device (see fromTypedArray)
    return fromTypedArray(BigInt64Array.from(indices, (i) => BigInt(labels[i]!)), [indices.length], { device: this.device });
  }
}
