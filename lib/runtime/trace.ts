// Operator traces for the CPU (native/trace.cc): a function of some tensors is
// run once while the addon records every operator it calls, and the record
// then replays on new tensors of the same shapes, dtypes and devices with one
// native call. The replay calls the same operators with the same arguments,
// so its results equal the function's bit for bit; what it skips is the
// JavaScript between operators (module calls, argument checks, wrappers),
// which is most of the difference between a small batch-1 forward pass and
// the same pass in a compiled runtime (BENCHMARKS.md, issue 12).
//
// What a trace cannot follow: JavaScript that reads a computed tensor's
// values (item(), toTypedArray()) is refused when the recording ends; control
// flow on shapes is fixed to the recorded ones (replays check the input
// shapes); tensors the function found rather than computed (weights) are
// held by reference, so changes made in place are seen and replaced tensors
// are not (a packed Linear's copy is one: eager passes repack it after
// a weight update, a trace does not, so record again); random operators draw
// new numbers on each replay.
import { native } from '../native';
import { describe } from '../tensor/dtype';
import { Ts } from '../tensor/op-runtime';
import { Tensor } from '../tensor/tensor';

const backstop = new FinalizationRegistry<number>((id) => native.traceDispose(id));

/** The traced function ran, but did something a replay could not follow (the message says what). */
export class TraceRefusedError extends Error {
  override name = 'TraceRefusedError';
}

function handles(xs: readonly Tensor[], what: string): number[] {
  if (!Array.isArray(xs)) throw new TypeError(`Expected an array of Tensors for ${what} but received ${describe(xs)}`);
  return xs.map((x, i) => {
    if (!(x instanceof Tensor)) throw new TypeError(`Expected a Tensor for ${what}[${i}] but received ${describe(x)}`);
    if (x.isDisposed) throw new TypeError(`${what}[${i}] has been disposed`);
    return x.id;
  });
}

export class Trace {
  private id: number | null;
  /** Operators the trace calls on each run. */
  readonly steps: number;

  private constructor(id: number) {
    this.id = id;
    this.steps = native.traceInfo(id).steps;
    backstop.register(this, id, this);
  }

  /**
   * Runs fn(...inputs) once, eagerly, recording the operators it calls, and
   * returns what it returned (yours to dispose) with the trace. fn must
   * return a Tensor or an array of Tensors computed from the inputs. If fn
   * throws, nothing is recorded and the error is rethrown; if fn did what a
   * replay could not follow, this throws TraceRefusedError (fn's results are
   * freed with the scope they were made in).
   */
  static record<R extends Tensor | Tensor[]>(inputs: readonly Tensor[], fn: (...inputs: Tensor[]) => R): { trace: Trace; result: R } {
    const ids = handles(inputs, 'the inputs of Trace.record');
    if (typeof fn !== 'function') throw new TypeError(`Expected a function for "fn" of Trace.record but received ${describe(fn)}`);
    native.traceBegin(ids);
    let result: R;
    let outputs: number[];
    try {
      result = fn(...inputs);
      outputs = handles(Array.isArray(result) ? result : [result as Tensor], 'what the traced function returned');
    } catch (e) {
      native.traceAbort();
      throw e;
    }
    let id: number;
    try {
      id = native.traceEnd(outputs);
    } catch (e) {
      // fn finished, so what the recording refuses is fn's own doing, not a failure to compute.
      throw new TraceRefusedError((e as Error).message, { cause: e });
    }
    return { trace: new Trace(id), result };
  }

  /**
   * The recorded operators on new inputs (same count, shapes, dtypes and
   * devices as recorded): the function's outputs, as new tensors.
   */
  run(inputs: readonly Tensor[]): Tensor[] {
    if (this.id === null) throw new Error('This trace has been disposed');
    return Ts(native.traceRun(this.id, handles(inputs, 'the inputs of Trace.run')));
  }

  get isDisposed(): boolean {
    return this.id === null;
  }

  /** Frees the record (and its hold on the tensors it found, such as weights). */
  dispose(): void {
    if (this.id === null) return;
    backstop.unregister(this);
    native.traceDispose(this.id);
    this.id = null;
  }
}
