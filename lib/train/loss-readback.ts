// Training losses read back from the device in batches. Reading a CUDA loss
// (`item()`) waits for the whole step to finish, so the host cannot queue the
// next one while the GPU runs: the training loops keep each step's loss as a
// device scalar and read `every` of them with one copy. On the CPU nothing runs
// ahead, so every step is read at once (every = 1) and nothing is delayed.
import type { Tensor } from '../tensor/tensor';
import { cat, stack } from '../tensor/functional';
import { scope } from '../tensor/scope';

export class PendingLosses<R> {
  private readonly losses: Tensor[] = [];
  /** Per entry: a float [k] tensor of further statistics read with the loss, or null. */
  private readonly extras: (Tensor | null)[] = [];
  private readonly records: R[] = [];

  constructor(readonly every: number) {
    if (!Number.isInteger(every) || every < 1) throw new RangeError(`Expected a positive integer for the loss read-back interval but received ${every}`);
  }

  get size(): number {
    return this.losses.length;
  }

  /** Holds a detached scalar loss (kept past the caller's scope; freed by take/dispose), optional further statistics, and what to report with them. */
  push(loss: Tensor, record: R, extra: Tensor | null = null): void {
    this.losses.push(loss.detach().keep());
    this.extras.push(extra === null ? null : extra.detach().reshape([-1]).keep());
    this.records.push(record);
  }

  /** True when `every` losses wait. */
  get due(): boolean {
    return this.losses.length >= this.every;
  }

  /** Reads every pending loss (and statistics) with one device-to-host copy and returns them in order with their records. */
  take(): Array<{ loss: number; extra: number[] | null; record: R }> {
    if (this.losses.length === 0) return [];
    const n = this.losses.length;
    const present = this.extras.filter((e): e is Tensor => e !== null);
    // float64 reads float32 and float64 losses exactly, as item() did
    const values = scope(() => Array.from(cat([stack(this.losses.map((l) => l.reshape([]).to('float64'))), ...present.map((e) => e.to('float64'))]).cpu().toTypedArray() as Float64Array));
    let at = n;
    const out = this.records.map((record, i) => {
      const e = this.extras[i];
      let extra: number[] | null = null;
      if (e !== null && e !== undefined) {
        extra = values.slice(at, at + e.numel);
        at += e.numel;
      }
      return { loss: values[i] as number, extra, record };
    });
    this.dispose();
    return out;
  }

  dispose(): void {
    for (const l of this.losses) l.dispose();
    for (const e of this.extras) e?.dispose();
    this.losses.length = 0;
    this.extras.length = 0;
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
