// Training losses read back from the device in batches. Reading a CUDA loss
// (`item()`) waits for the whole step to finish, so the host cannot queue the
// next one while the GPU runs: the training loops keep each step's loss as a
// device scalar and read `every` of them with one copy. On the CPU nothing runs
// ahead, so every step is read at once (every = 1) and nothing is delayed.
import type { Tensor } from '../tensor/tensor';
import { stack } from '../tensor/functional';
import { scope } from '../tensor/scope';

export class PendingLosses<R> {
  private readonly losses: Tensor[] = [];
  private readonly records: R[] = [];

  constructor(readonly every: number) {
    if (!Number.isInteger(every) || every < 1) throw new RangeError(`Expected a positive integer for the loss read-back interval but received ${every}`);
  }

  get size(): number {
    return this.losses.length;
  }

  /** Holds a detached scalar loss (kept past the caller's scope; freed by take/dispose) and what to report with it. */
  push(loss: Tensor, record: R): void {
    this.losses.push(loss.detach().keep());
    this.records.push(record);
  }

  /** True when `every` losses wait. */
  get due(): boolean {
    return this.losses.length >= this.every;
  }

  /** Reads every pending loss with one device-to-host copy and returns them in order with their records. */
  take(): Array<{ loss: number; record: R }> {
    if (this.losses.length === 0) return [];
    // float64 reads float32 and float64 losses exactly, as item() did
    const values = scope(() => Array.from(stack(this.losses.map((l) => l.reshape([]).to('float64'))).cpu().toTypedArray() as Float64Array));
    const out = values.map((loss, i) => ({ loss, record: this.records[i] as R }));
    this.dispose();
    return out;
  }

  dispose(): void {
    for (const l of this.losses) l.dispose();
    this.losses.length = 0;
    this.records.length = 0;
  }
}

/** A micro-batch loss added to the step's running sum on the device: sum + term, freeing both inputs. */
export function addInto(sum: Tensor, term: Tensor): Tensor {
  const next = sum.add(term);
  sum.dispose();
  term.dispose();
  return next;
}
