// Device graphs (CUDA graphs, at::accelerator's graph interface): a function
// that issues only device work is recorded once and then replayed with one
// launch, so the host's per-op cost (JS, N-API, dispatcher) disappears from
// the step. What a replay reads and writes are the tensors the capture saw:
// inputs must be copied into the same tensors before each replay, and outputs
// are overwritten by the next one. Nothing in the captured function may read a
// value back to the host or depend on one.
import { native } from '../native';
import { assertDevice, type Device } from '../tensor/device';

/** Whether `device` can capture graphs with this addon and libtorch (false on CPU). */
export function graphsSupported(device: Device): boolean {
  return native.graphSupported(assertDevice(device));
}

export class DeviceGraph {
  readonly device: string;
  private readonly id: number;
  private state: 'new' | 'captured' | 'failed' | 'disposed' = 'new';

  /** A graph for an accelerator; throws, naming why, where graphs are not supported. */
  constructor(device: Device) {
    this.device = assertDevice(device);
    if (this.device === 'cpu' || this.device.startsWith('cpu:')) {
      throw new Error('Device graphs are for accelerators (cuda); on cpu run the function directly');
    }
    this.id = native.graphCreate(this.device);
  }

  get captured(): boolean {
    return this.state === 'captured';
  }

  /**
   * Runs fn eagerly on the graph's stream: warm-up before capture, so lazy
   * set-up (library handles, workspaces, optimizer state) happens outside it.
   */
  warmUp<T>(fn: () => T): T {
    this.check('new', 'warm up');
    native.graphEnterStream(this.id);
    try {
      return fn();
    } finally {
      native.graphLeaveStream(this.id);
    }
  }

  /**
   * Records fn (its device work runs only at replay()) and returns what fn
   * returned: tensors that every replay overwrites. If fn throws, or the
   * capture is invalid (a host sync, say), the graph cannot be used and this
   * throws; the tensors fn allocated belong to the graph's memory pool.
   */
  capture<T>(fn: () => T): T {
    this.check('new', 'capture');
    this.state = 'failed';
    native.graphEnterStream(this.id);
    let result: T;
    try {
      native.graphCaptureBegin(this.id);
      try {
        result = fn();
      } catch (e) {
        try {
          native.graphCaptureEnd(this.id);
        } catch {
          // fn's own error says more than the invalidated capture's.
        }
        throw e;
      }
      native.graphCaptureEnd(this.id);
    } finally {
      native.graphLeaveStream(this.id);
    }
    this.state = 'captured';
    return result;
  }

  /** Runs the recorded work again, queued on the current stream after what is already there. */
  replay(): void {
    this.check('captured', 'replay');
    native.graphReplay(this.id);
  }

  /** Frees the graph and its memory pool; tensors the capture returned must be disposed first. */
  dispose(): void {
    if (this.state === 'disposed') return;
    this.state = 'disposed';
    native.graphDispose(this.id);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private check(want: 'new' | 'captured', what: string): void {
    if (this.state === want) return;
    const why = { new: 'it has not been captured', captured: 'it is already captured', failed: 'its capture failed', disposed: 'it has been disposed' }[this.state];
    throw new Error(`Cannot ${what} this device graph: ${why}`);
  }
}
