// The direct lane between an Encoder (main thread) and its model thread
// (./worker): shared memory for the one request that finds the model idle,
// and a doorbell the idle model thread sleeps on. A lone request otherwise
// pays two message-port hops (structured clone, an event-loop wake-up, a
// 'message' event on each side); through the lane it pays two futex
// wake-ups and two small copies. Bigger images, classifications and batches
// still travel as messages; the doorbell is rung for those too, since the
// idle thread sleeps on it instead of in its event loop.
//
// Who writes what: the main thread writes a request (input, length, id) and
// sets REQUEST; the model thread sets TAKEN, and when done either writes
// the features and sets ANSWER, or sets ANSWERED_BY_MESSAGE and then posts
// its answer (a bad image, a failure) as a message. Only one lane request
// is out at a time (the Encoder sends one only while nothing is in flight),
// so the two never write at once.

/** Int32 slots of the control block. */
const BELL = 0;
const STATE = 1;
const LENGTH = 2;
const ID = 3;
const CONTROL_BYTES = 32;
const TIME_BYTES = 8;

/** The request slot's states (0: empty). */
const REQUEST = 1;
const TAKEN = 2;
const ANSWER = 3;
const ANSWERED_BY_MESSAGE = 4;

// Atomics.waitAsync (Node 16+; ES2024, later than this project's lib target).
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** Encoded images up to this size take the lane (a copy of this much costs a few microseconds). */
export const LANE_INPUT_BYTES = 256 * 1024;

export class Lane {
  private readonly control: Int32Array;
  /** The model thread's compute time for the answer, in ms. */
  private readonly time: Float64Array;
  private readonly input: Uint8Array;
  private readonly output: Float32Array;

  /** The lane over `shared` (made by Lane.create in the model thread, which knows the feature width). */
  constructor(readonly shared: SharedArrayBuffer, readonly width: number) {
    this.control = new Int32Array(shared, 0, CONTROL_BYTES / 4);
    this.time = new Float64Array(shared, CONTROL_BYTES, 1);
    this.input = new Uint8Array(shared, CONTROL_BYTES + TIME_BYTES, LANE_INPUT_BYTES);
    this.output = new Float32Array(shared, CONTROL_BYTES + TIME_BYTES + LANE_INPUT_BYTES, width);
  }

  static create(width: number): Lane {
    return new Lane(new SharedArrayBuffer(CONTROL_BYTES + TIME_BYTES + LANE_INPUT_BYTES + 4 * width), width);
  }

  // --- the main thread ---

  /** Wakes the model thread if it sleeps on the doorbell (after a message, or a lane request). */
  ring(): void {
    Atomics.add(this.control, BELL, 1);
    Atomics.notify(this.control, BELL);
  }

  /** Writes a request and rings; resolves once the model thread has answered it (see answer()). */
  send(id: number, bytes: Uint8Array): Promise<void> {
    this.input.set(bytes);
    this.control[LENGTH] = bytes.length;
    this.control[ID] = id;
    Atomics.store(this.control, STATE, REQUEST);
    this.ring();
    return this.answered();
  }

  /** Resolves once the state is past REQUEST and TAKEN (the model thread notifies only then). */
  private async answered(): Promise<void> {
    for (;;) {
      const state = Atomics.load(this.control, STATE);
      if (state !== REQUEST && state !== TAKEN) return;
      const wait = waitAsync(this.control, STATE, state);
      if (wait.async) await wait.value;
    }
  }

  /** Request `id`'s features and compute time, or null when its answer comes as a message (or it is not the lane's request any more). */
  answer(id: number): { features: Float32Array<ArrayBuffer>; computeMs: number } | null {
    if (this.control[ID] !== id || Atomics.load(this.control, STATE) !== ANSWER) return null;
    return { features: this.output.slice(), computeMs: this.time[0]! };
  }

  // --- the model thread ---

  /** The doorbell's count: read it before looking for work, then sleep(count). */
  rung(): number {
    return Atomics.load(this.control, BELL);
  }

  /** Sleeps until the doorbell rings after `count` or `ms` pass. */
  sleep(count: number, ms: number): void {
    Atomics.wait(this.control, BELL, count, ms);
  }

  /** The waiting request, now taken (its id and a copy of its bytes), or null. */
  take(): { id: number; bytes: Uint8Array } | null {
    if (Atomics.compareExchange(this.control, STATE, REQUEST, TAKEN) !== REQUEST) return null;
    return { id: this.control[ID]!, bytes: this.input.slice(0, this.control[LENGTH]) };
  }

  /** Answers the taken request with its features. */
  answerWith(features: Float32Array, computeMs: number): void {
    this.output.set(features);
    this.time[0] = computeMs;
    this.settle(ANSWER);
  }

  /** Marks the taken request as answered by a message; call it before posting that message. */
  answerByMessage(): void {
    this.settle(ANSWERED_BY_MESSAGE);
  }

  private settle(state: number): void {
    Atomics.store(this.control, STATE, state);
    Atomics.notify(this.control, STATE);
  }
}
