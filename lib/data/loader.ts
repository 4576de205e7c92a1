// Batches for training: a seeded shuffle per epoch, drop-last, several
// batches assembled ahead while the model trains, pixels handed over as a
// uint8 tensor [B, C, H, W] on the training device (through pinned memory
// with a non-blocking copy on CUDA). The order is a pure function of
// (seed, epoch), so a run resumed at batch k sees the same batches.
import { Generator } from '../runtime/generator';
import { randperm, fromTypedArray } from '../tensor/creation';
import * as aten from '../tensor/ops.generated';
import type { Tensor } from '../tensor/tensor';
import type { Device } from '../tensor/device';
import type { ImageDataset } from './dataset';

export interface LoaderOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch (default true: every step sees batchSize images). */
  dropLast?: boolean;
  /** Batches assembled ahead (default 2). */
  prefetch?: number;
  /** Items decoded at once per batch (default 8). */
  concurrency?: number;
  device?: Device;
  /**
   * A file that fails to decode stops the epoch with an error naming it.
   * Otherwise (default) it is reported to onSkip, never read again, and its
   * place in the batch is taken by the next unread item of the epoch.
   */
  strict?: boolean;
  onSkip?: (name: string, error: Error) => void;
}

export interface Batch {
  /** uint8 [B, C, H, W] on the loader's device; the caller disposes it. */
  images: Tensor;
  /** int64 [B] class indices, or null for unlabelled data; the caller disposes it. */
  labels: Tensor | null;
  /** Dataset indices of the items. */
  indices: number[];
  /** Position of the batch in its epoch. */
  step: number;
}

export class DataLoader {
  readonly batchSize: number;
  private readonly o: Required<Omit<LoaderOptions, 'onSkip' | 'device'>> & { device: Device; onSkip?: (name: string, error: Error) => void };
  private readonly bad = new Set<number>();

  constructor(readonly dataset: ImageDataset, options: LoaderOptions) {
    const positive = (v: unknown, what: string) => {
      if (!Number.isSafeInteger(v) || (v as number) < 1) throw new RangeError(`Expected a positive integer for "${what}" of the data loader but received ${String(v)}`);
      return v as number;
    };
    this.batchSize = positive(options.batchSize, 'batchSize');
    this.o = {
      batchSize: this.batchSize,
      shuffle: options.shuffle ?? true,
      seed: options.seed ?? 0,
      dropLast: options.dropLast ?? true,
      prefetch: positive(options.prefetch ?? 2, 'prefetch'),
      concurrency: positive(options.concurrency ?? 8, 'concurrency'),
      device: options.device ?? 'cpu',
      strict: options.strict ?? false,
      onSkip: options.onSkip,
    };
    if (this.batchesPerEpoch() === 0) {
      throw new RangeError(`The dataset has ${dataset.count} images, fewer than one batch of ${this.batchSize} (with dropLast)`);
    }
  }

  batchesPerEpoch(): number {
    const n = this.dataset.count;
    return this.o.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The epoch's item order: a permutation drawn from (seed, epoch) alone. */
  order(epoch: number): Int32Array {
    const n = this.dataset.count;
    if (!this.o.shuffle) return Int32Array.from({ length: n }, (_, i) => i);
    const g = Generator.create(this.o.seed * 1_000_003 + epoch);
    const perm = randperm(n, { generator: g });
    const out = Int32Array.from(perm.toTypedArray<'int64'>(), Number);
    perm.dispose();
    return out;
  }

  /** The batches of one epoch from batch `start` on (for a resumed run). */
  async *epoch(epoch: number, start = 0): AsyncGenerator<Batch, void, undefined> {
    const order = this.order(epoch);
    const total = this.batchesPerEpoch();
    const bs = this.batchSize;
    // Items not yet used this epoch, for replacing ones that fail to decode:
    // those past the batches this epoch will read first.
    let spare = Math.min(total * bs, order.length);
    const nextSpare = (): number | null => {
      while (spare < order.length) {
        const i = order[spare++] as number;
        if (!this.bad.has(i)) return i;
      }
      return null;
    };
    const assemble = async (step: number): Promise<{ pixels: Uint8Array; indices: number[] }> => {
      const first = step * bs;
      const wanted = Math.min(bs, order.length - first);
      const item = this.dataset.size * this.dataset.size * this.dataset.channels;
      const pixels = new Uint8Array(wanted * item);
      const indices = new Array<number>(wanted);
      let cursor = 0;
      const worker = async (): Promise<void> => {
        while (cursor < wanted) {
          const slot = cursor++;
          let index: number | null = order[first + slot] as number;
          while (index !== null) {
            if (!this.bad.has(index)) {
              try {
                pixels.set(await this.dataset.read(index), slot * item);
                indices[slot] = index;
                break;
              } catch (e) {
                if (this.o.strict) throw new Error(`Cannot read training image ${this.dataset.name(index)}: ${(e as Error).message}`);
                this.bad.add(index);
                this.o.onSkip?.(this.dataset.name(index), e as Error);
              }
            }
            index = nextSpare();
          }
          if (index === null) throw new Error(`Ran out of readable images to fill batch ${step} of epoch ${epoch} (${this.bad.size} skipped)`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.o.concurrency, wanted) }, worker));
      return { pixels, indices };
    };
    const queue: Promise<{ pixels: Uint8Array; indices: number[] }>[] = [];
    let nextStep = start;
    const fill = () => {
      while (queue.length < this.o.prefetch && nextStep < total) {
        const p = assemble(nextStep++);
        p.catch(() => {}); // awaited in order below; an abandoned prefetch must not be an unhandled rejection
        queue.push(p);
      }
    };
    fill();
    for (let step = start; step < total; step++) {
      const { pixels, indices } = await (queue.shift() as Promise<{ pixels: Uint8Array; indices: number[] }>);
      fill();
      // Tensors are made only when handed over, so stopping early leaks nothing.
      yield { images: this.toDevice(pixels, indices.length), labels: this.labelsOf(indices), indices, step };
    }
  }

  private toDevice(pixels: Uint8Array, count: number): Tensor {
    const { size, channels } = this.dataset;
    const hwc = fromTypedArray(pixels, [count, size, size, channels]);
    const chw = hwc.permute(0, 3, 1, 2);
    const host = chw.contiguous();
    hwc.dispose();
    chw.dispose();
    if (this.o.device === 'cpu') return host;
    const pinned = aten.pin_memory(host);
    host.dispose();
    const moved = pinned.to({ device: this.o.device, nonBlocking: true });
    pinned.dispose();
    return moved;
  }

  private labelsOf(indices: number[]): Tensor | null {
    const labels = this.dataset.labels;
    if (labels === null) return null;
    const t = fromTypedArray(BigInt64Array.from(indices, (i) => BigInt(labels[i] as number)), [indices.length]);
    if (this.o.device === 'cpu') return t;
    const moved = t.to({ device: this.o.device });
    t.dispose();
    return moved;
  }
}
