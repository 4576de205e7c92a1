// The serving worker's operator traces (et.Trace), one per batch size: the
// first batch of a size records the forward pass, the next ones replay it.
// Only the `capacity` sizes used last are kept (a Map iterates in insertion
// order, so moving a key to the end on each use makes the first key the
// least recently used), so a large maxBatch cannot make the worker hold a
// trace for every size it ever saw. A forward pass that cannot be traced (it
// reads values it computed, say) runs eagerly from then on.
import { Trace, TraceRefusedError } from '../runtime/trace';
import type { Tensor } from '../tensor/tensor';

export class TraceCache {
  private readonly traces = new Map<number, Trace>();
  private refusal: string | null = null;

  constructor(readonly capacity: number) {}

  /** Why forward passes run eagerly (the first recording was refused), or null while they are traced. */
  get refused(): string | null {
    return this.refusal;
  }

  /** forward(x), replayed from the trace recorded for `size`, or recorded now. */
  run(size: number, x: Tensor, forward: (x: Tensor) => Tensor): Tensor {
    if (this.refusal !== null) return forward(x);
    const trace = this.traces.get(size);
    if (trace !== undefined) {
      this.traces.delete(size);
      this.traces.set(size, trace);
      return trace.run([x])[0]!;
    }
    let recorded: { trace: Trace; result: Tensor };
    try {
      recorded = Trace.record([x], forward);
    } catch (e) {
      if (!(e instanceof TraceRefusedError)) throw e;
      this.refusal = e.message;
      this.dispose();
      return forward(x);
    }
    this.traces.set(size, recorded.trace);
    if (this.traces.size > this.capacity) {
      const [oldest, old] = this.traces.entries().next().value as [number, Trace];
      this.traces.delete(oldest);
      old.dispose();
    }
    return recorded.result;
  }

  /** The sizes with a trace, least recently used first. */
  sizes(): number[] {
    return [...this.traces.keys()];
  }

  dispose(): void {
    for (const trace of this.traces.values()) trace.dispose();
    this.traces.clear();
  }
}
