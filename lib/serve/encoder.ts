// A trained encoder for a Node service: embed() takes one encoded image and
// resolves with its features; opened on a fine-tuned classifier, classify()
// also resolves with its top classes. The model lives in a worker thread (./worker),
// so a forward pass never blocks the event loop. A request that finds the
// model idle goes straight to that thread, which decodes its image and
// computes it: the fewest thread hops for a lone request, and the cheapest,
// through shared memory (./lane) when it is an encoded image to embed of at
// most 256 KB. A request that
// arrives while the model is busy goes to a second thread (./decode-worker),
// which decodes it while the model computes the batch before, unless it is
// a small plain PNG (mainThreadPixels): the main thread decodes those
// itself, since their two hops cost more than their decoding and, on a
// machine with few cores, wait for the decoding thread to be scheduled.
// The main thread queues the decoded requests and groups them into micro-batches: a
// batch leaves when it is full (maxBatch) or when its oldest request has
// waited maxWaitMs, whichever comes first, and only one batch is in the
// worker at a time, so while the model is busy the next batch fills up
// instead of piling into the worker's inbox, where it could no longer be
// cancelled. The default wait is 0: an idle model takes a request at once,
// and batches form from the requests that arrive while it is busy (waiting
// only delays lone requests; measured in bench/serve.ts). With a wait above
// 0 every request takes the decoding thread (or is decoded here), so that
// an idle model waits for its batch to fill as asked.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { nonNegativeFinite, nonNegativeInt, positiveFinite, positiveInt } from '../checks';
import { describe } from '../tensor/dtype';
import { scope } from '../tensor/scope';
import { Tensor } from '../tensor/tensor';
import { Lane, LANE_INPUT_BYTES } from './lane';
import { decodeSmallPng } from './prepare';

export interface EncoderOptions {
  /**
   * An ExtreMA checkpoint (this project's .safetensors or the authors' .pth),
   * or a fine-tuned classifier written by `extrema finetune`, which can also
   * classify; its features are the pooled ones before the head.
   */
  checkpoint: string;
  /** The teacher (default, what `extrema embed` uses) or the student encoder; ignored for a classifier. */
  which?: 'teacher' | 'student';
  /** Attention heads of a .pth model (default width / 64). */
  heads?: number;
  /** Where the model runs (default 'cpu'). */
  device?: string;
  /** Most images per forward pass (default 32). */
  maxBatch?: number;
  /** Longest a request waits for its batch to fill while the model is idle (default 0: the next turn of the event loop). */
  maxWaitMs?: number;
  /** Requests that may wait for the model (being decoded or queued for a batch); beyond this embed() rejects with QueueFullError (default 256). */
  queueLimit?: number;
  /** Default per-request deadline from the call to embed() (default 30000 ms). */
  timeoutMs?: number;
  /** libtorch intra-op threads (default: libtorch's own choice). */
  threads?: number;
  /** Largest image accepted, in pixels, checked from its header before decoding (default 40e6). */
  maxPixels?: number;
  /**
   * Plain PNGs (8-bit gray or RGB, the files lib/io/png.ts reads without
   * sharp) of at most this many pixels that arrive while the model is busy
   * are decoded on the main thread, bounded work of a few tens of
   * microseconds, instead of taking two thread hops through the decoding
   * thread (default 4096, 64 x 64; 0: never).
   */
  mainThreadPixels?: number;
  /** L2-normalise every feature vector (default false: the features `extrema embed` writes). */
  normalize?: boolean;
  /** Packed Linear layers (nn.packForInference; default true, as `extrema embed`); false: ATen's linear. */
  packWeights?: boolean;
  /**
   * Replay each batch size's forward pass from an operator trace (et.Trace)
   * recorded by its first batch: the same operators and numbers without the
   * model's JavaScript between them, about 0.6 ms less for a lone request on
   * the demo model (default true on the CPU, false elsewhere).
   */
  trace?: boolean;
}

export interface EmbedRequestOptions {
  signal?: AbortSignal;
  /** This request's deadline (default: the encoder's timeoutMs). */
  timeoutMs?: number;
}

export interface ClassifyRequestOptions extends EmbedRequestOptions {
  /** Classes to return, best first (default 5, at most the number of classes). */
  topK?: number;
}

/** One class of a classify() answer. */
export interface Classification {
  /** The class name stored with the checkpoint, or the class index when it has none. */
  label: string | number;
  /** The class index (the head's output). */
  index: number;
  /** Softmax probability, as `extrema predict` reports it. */
  probability: number;
}

export interface EncoderStats {
  /** Requests waiting for the model: being decoded, or decoded and queued for a batch. */
  queued: number;
  /** Requests in the batch the worker is processing. */
  inFlight: number;
  /** Batches sent to the worker. */
  batches: number;
  /** Requests accepted by embed() (not counting those refused at once). */
  requests: number;
  /** Of those, the ones that found the model idle and went straight to its thread, decoded there. */
  direct: number;
  /** Of those, the small plain PNGs that arrived while the model was busy and were decoded on the main thread (mainThreadPixels); the rest took the decoding thread. */
  mainThreadDecoded: number;
  /** batchSizes[k]: batches of k requests. */
  batchSizes: number[];
  meanBatchSize: number;
  /** Time the worker spent in forward passes, over all batches and for the longest one. */
  computeMs: number;
  maxComputeMs: number;
}

/** The encoder was closed (or its worker stopped) before the request finished. */
export class ClosedError extends Error {
  override name = 'ClosedError';
}

/** queueLimit requests are already waiting; try again after retryAfterMs. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(message: string, readonly retryAfterMs: number) {
    super(message);
  }
}

/** The request did not finish within its timeout. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** The image could not be decoded or preprocessed; the message says why. */
export class InputError extends Error {
  override name = 'InputError';
}

/** classify() on an encoder opened from a pretraining checkpoint, which has no classifier head. */
export class NotAClassifierError extends Error {
  override name = 'NotAClassifierError';
}

/** @internal a request's image as given: encoded bytes, or raw pixels of any size */
export type RawImage =
  | { kind: 'encoded'; bytes: Uint8Array }
  | { kind: 'pixels'; bytes: Uint8Array; height: number; width: number; channels: 1 | 3 };

/** @internal the decoding thread's protocol */
export interface ToDecoder { id: number; item: RawImage; size: number; channels: 1 | 3; maxPixels: number }
/** @internal */
export type FromDecoder = { ready: true } | { id: number; pixels: Uint8Array } | { id: number; error: string };

/** @internal the model thread's input: pixels at the model's size; topK present: classify, absent: embed */
export interface ModelItem { pixels: Uint8Array; topK?: number }

/** @internal */
export interface WorkerInit {
  checkpoint: string;
  which: 'teacher' | 'student';
  heads?: number;
  device: string;
  threads?: number;
  normalize: boolean;
  packWeights: boolean;
  trace: boolean;
  /** The largest image the model thread decodes for the lane (see ./lane). */
  maxPixels: number;
}

/** @internal a batch of prepared items, or one request's image for the idle model to prepare and compute */
export type ToWorker =
  | { type: 'batch'; id: number; items: ModelItem[] }
  | { type: 'image'; id: number; item: RawImage; maxPixels: number; topK?: number }
  | { type: 'close' };

/** @internal */
export type FromWorker =
  | { type: 'ready'; lane: SharedArrayBuffer; width: number; size: number; channels: number; warmupMs: number; packedLinears: number; traced: boolean; classifier: { classes: string[] | null; numClasses: number } | null }
  | { type: 'fatal'; message: string }
  // features: the rows of the embedded items, packed in order; top: each classified item's classes
  | { type: 'result'; id: number; features: Float32Array<ArrayBuffer>; top: (Classification[] | null)[]; computeMs: number }
  | { type: 'failed'; id: number; message: string }
  // an 'image' whose preparation failed: the client's input, not the model
  | { type: 'rejected'; id: number; message: string };

interface Request {
  topK?: number;
  /** The model's input, once the decoding thread has made it. */
  pixels: Uint8Array | null;
  resolve(v: Float32Array | Classification[]): void;
  reject(e: unknown): void;
  /** Clears the timer and the abort listener; false once the request is settled. */
  settle(): boolean;
}

/** An option's value, or its default when absent (the library's checks: TypeError for a non-number, RangeError out of range). */
function option(v: unknown, fallback: number, name: string, check: (value: unknown, name: string) => number): number {
  return v === undefined ? fallback : check(v, `"${name}"`);
}

function clearBatchTimer(t: NodeJS.Timeout | NodeJS.Immediate): void {
  if ('hasRef' in t && 'refresh' in t) clearTimeout(t);
  else clearImmediate(t as NodeJS.Immediate);
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/**
 * A thread's first message, when `problem` finds nothing wrong with it;
 * otherwise, or on an error or an exit first, an error that names the thread.
 */
function started<M>(w: Worker, name: string, what: string, problem: (m: M) => string | null): Promise<M> {
  return new Promise<M>((resolve, reject) => {
    const detach = () => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
    };
    const fail = (e: Error) => {
      detach();
      reject(e);
    };
    const onMessage = (m: M) => {
      const wrong = problem(m);
      if (wrong !== null) return fail(new Error(`${what}: ${wrong}`));
      detach();
      resolve(m);
    };
    const onError = (e: Error) => fail(new Error(`${what}: ${e.message}`, { cause: e }));
    const onExit = (code: number) => fail(new Error(`${what}: ${name} exited (code ${code}) before it was ready`));
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
  });
}

const WORKER = path.join(__dirname, 'worker.js');
const DECODER = path.join(__dirname, 'decode-worker.js');

export class Encoder {
  /** Feature width (the encoder's embedDim). */
  readonly width: number;
  /** Side of the square model input, in pixels. */
  readonly size: number;
  readonly channels: number;
  /** The one-off first forward pass, in ms. */
  readonly warmupMs: number;
  /** Linear layers running a packed product (0 with packWeights false, on a GPU, or where no packed kernel runs). */
  readonly packedLinears: number;
  /** Whether the worker replays each batch size's forward pass from an operator trace: the trace option, unless the model's forward pass could not be traced. */
  readonly traced: boolean;
  /** 'classifier' for a fine-tuned classifier checkpoint (classify() works), else 'encoder'. */
  readonly kind: 'encoder' | 'classifier';
  /** A classifier's outputs, or null for an encoder. */
  readonly numClasses: number | null;
  /** A classifier's class names in label order, or null (an encoder, or a classifier saved without names). */
  readonly classes: readonly string[] | null;

  /** Requests whose image the decoding thread is preparing, by decode id. */
  private readonly preparing = new Map<number, Request>();
  private decodeId = 0;
  /** Requests ready for the model, waiting for a batch. */
  private readonly queue: Request[] = [];
  private inFlight: Request[] | null = null;
  private batchId = 0;
  private sentAt = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private closing = false;
  private drainWaiters: (() => void)[] = [];
  private readonly exited: Promise<void>;
  private readonly counts = { batches: 0, requests: 0, direct: 0, mainThreadDecoded: 0, computeMs: 0, maxComputeMs: 0, sizes: [] as number[] };
  /** Smoothed wall time of a batch round trip, for QueueFullError.retryAfterMs. */
  private batchMs: number;
  /** Shared memory with the model thread, for a lone request (./lane). */
  private readonly lane: Lane;

  private constructor(
    private readonly worker: Worker,
    private readonly decoder: Worker,
    ready: Extract<FromWorker, { type: 'ready' }>,
    private readonly o: Required<Pick<EncoderOptions, 'maxBatch' | 'maxWaitMs' | 'queueLimit' | 'timeoutMs' | 'maxPixels' | 'mainThreadPixels'>>,
  ) {
    this.width = ready.width;
    this.size = ready.size;
    this.channels = ready.channels;
    this.warmupMs = ready.warmupMs;
    this.packedLinears = ready.packedLinears;
    this.traced = ready.traced;
    this.kind = ready.classifier === null ? 'encoder' : 'classifier';
    this.numClasses = ready.classifier?.numClasses ?? null;
    this.classes = ready.classifier?.classes === null || ready.classifier === null ? null : Object.freeze([...ready.classifier.classes]);
    this.batchMs = ready.warmupMs + o.maxWaitMs;
    this.lane = new Lane(ready.lane, ready.width);
    this.exited = Promise.all([worker, decoder].map((w) => new Promise<void>((resolve) => w.once('exit', () => resolve())))).then(() => undefined);
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.stop(new ClosedError(`The encoder's worker failed: ${e.message}`, { cause: e })));
    worker.once('exit', (code) => this.stop(new ClosedError(`The encoder's worker stopped (exit code ${code})`)));
    decoder.on('message', (m: FromDecoder) => this.onDecoded(m));
    decoder.on('error', (e) => this.stop(new ClosedError(`The encoder's decoding thread failed: ${e.message}`, { cause: e })));
    decoder.once('exit', (code) => this.stop(new ClosedError(`The encoder's decoding thread stopped (exit code ${code})`)));
  }

  /** Starts the worker, loads the checkpoint there and runs one warm-up batch. */
  static async open(options: EncoderOptions): Promise<Encoder> {
    if (typeof options?.checkpoint !== 'string' || options.checkpoint === '') throw new TypeError('Expected a checkpoint path in "checkpoint"');
    if (options.trace !== undefined && typeof options.trace !== 'boolean') throw new TypeError(`Expected true or false for "trace" but received ${describe(options.trace)}`);
    const which = options.which ?? 'teacher';
    if (which !== 'teacher' && which !== 'student') throw new TypeError(`Expected "teacher" or "student" for "which" but received ${String(which)}`);
    const o = {
      maxBatch: option(options.maxBatch, 32, 'maxBatch', positiveInt),
      maxWaitMs: option(options.maxWaitMs, 0, 'maxWaitMs', nonNegativeFinite),
      queueLimit: option(options.queueLimit, 256, 'queueLimit', positiveInt),
      timeoutMs: option(options.timeoutMs, 30_000, 'timeoutMs', positiveFinite),
      maxPixels: option(options.maxPixels, 40e6, 'maxPixels', positiveInt),
      mainThreadPixels: option(options.mainThreadPixels, 4096, 'mainThreadPixels', nonNegativeInt),
    };
    const init: WorkerInit = {
      checkpoint: path.resolve(options.checkpoint), which, device: options.device ?? 'cpu', normalize: options.normalize ?? false,
      packWeights: options.packWeights ?? true, maxPixels: o.maxPixels,
      // A wrong device is the worker's to report (assertDevice); here it only decides the default.
      trace: options.trace ?? (options.device === undefined || (typeof options.device === 'string' && options.device.startsWith('cpu'))),
      ...(options.heads !== undefined ? { heads: positiveInt(options.heads, '"heads"') } : {}),
      ...(options.threads !== undefined ? { threads: positiveInt(options.threads, '"threads"') } : {}),
    };
    const what = `Cannot open the encoder ${options.checkpoint}`;
    // Both threads start at once; the decoder is ready long before the model.
    const decoder = new Worker(DECODER);
    const decoderReady = started<FromDecoder>(decoder, 'its decoding thread', what, (m) => ('ready' in m ? null : 'an early answer'));
    const worker = new Worker(WORKER, { workerData: init });
    const modelReady = started<FromWorker>(worker, 'its worker', what, (m) => (m.type === 'ready' ? null : m.type === 'fatal' || m.type === 'failed' ? m.message : m.type));
    const [ready] = await Promise.all([modelReady, decoderReady]).catch(async (e: unknown) => {
      await Promise.all([worker.terminate(), decoder.terminate()]);
      throw e;
    });
    return new Encoder(worker, decoder, ready as Extract<FromWorker, { type: 'ready' }>, o);
  }

  /** Features of one encoded image (JPEG, PNG, WebP, ...), preprocessed as `extrema embed` reads an image file. */
  embed(image: Uint8Array, options: EmbedRequestOptions = {}): Promise<Float32Array> {
    if (!(image instanceof Uint8Array)) return Promise.reject(new TypeError(`Expected the image as a Uint8Array or Buffer but received ${Object.prototype.toString.call(image)}`));
    if (image.length === 0) return this.refuse(new InputError('The image is empty (0 bytes)'), options);
    // A copy of our own: the caller may reuse its buffer, and ours can be transferred to the worker.
    return this.enqueue<Float32Array>({ kind: 'encoded', bytes: new Uint8Array(image) }, options);
  }

  /**
   * The topK most probable classes of one encoded image, best first, with
   * the probabilities `extrema predict` gives for the same file. Only for a
   * classifier checkpoint (kind 'classifier'); an encoder rejects with
   * NotAClassifierError.
   */
  classify(image: Uint8Array, options: ClassifyRequestOptions = {}): Promise<Classification[]> {
    if (this.numClasses === null) {
      return Promise.reject(new NotAClassifierError('This checkpoint is a pretrained encoder, not a fine-tuned classifier: it has no classes to predict (open a checkpoint written by `extrema finetune`)'));
    }
    let topK: number;
    try {
      topK = Math.min(option(options.topK, 5, 'topK', positiveInt), this.numClasses);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!(image instanceof Uint8Array)) return Promise.reject(new TypeError(`Expected the image as a Uint8Array or Buffer but received ${Object.prototype.toString.call(image)}`));
    if (image.length === 0) return this.refuse(new InputError('The image is empty (0 bytes)'), options);
    return this.enqueue<Classification[]>({ kind: 'encoded', bytes: new Uint8Array(image) }, options, topK);
  }

  /** Most images per forward pass (the maxBatch option). */
  get maxBatch(): number {
    return this.o.maxBatch;
  }

  /** True once close() was called or the worker stopped: every later request rejects with ClosedError. */
  get closed(): boolean {
    return this.closing;
  }

  /** Features of raw height x width x channels uint8 pixels (row-major, channels 1 or 3), resized and cropped like an image file. */
  embedPixels(pixels: Uint8Array, height: number, width: number, channels: 1 | 3, options: EmbedRequestOptions = {}): Promise<Float32Array> {
    if (!(pixels instanceof Uint8Array)) return Promise.reject(new TypeError(`Expected pixels as a Uint8Array but received ${Object.prototype.toString.call(pixels)}`));
    for (const [v, name] of [[height, 'height'], [width, 'width']] as const) {
      if (!Number.isInteger(v) || v < 1) return this.refuse(new InputError(`Expected a positive integer ${name} but received ${String(v)}`), options);
    }
    if (channels !== 1 && channels !== 3) return this.refuse(new InputError(`Expected 1 or 3 channels but received ${String(channels)}`), options);
    if (height * width > this.o.maxPixels) return this.refuse(new InputError(`The image has ${height} x ${width} pixels, more than the limit of ${this.o.maxPixels}`), options);
    if (pixels.length !== height * width * channels) {
      return this.refuse(new InputError(`Expected ${height * width * channels} bytes for a ${height} x ${width} x ${channels} image but received ${pixels.length}`), options);
    }
    return this.enqueue<Float32Array>({ kind: 'pixels', bytes: new Uint8Array(pixels), height, width, channels }, options);
  }

  /**
   * Features of one image held as a uint8 Tensor: [C, H, W] (the layout of
   * the DataLoader's batches, C = 1 or 3) or [H, W] for gray, on any device,
   * any size (resized and cropped like an image file). The pixels are copied
   * out at the call; the tensor stays the caller's. A batch [B, C, H, W] is
   * `Promise.all(batch.unbind(0).map((x) => encoder.embedTensor(x)))`.
   */
  embedTensor(image: Tensor, options: EmbedRequestOptions = {}): Promise<Float32Array> {
    if (!(image instanceof Tensor)) return Promise.reject(new TypeError(`Expected a Tensor for "image" of embedTensor but received ${describe(image)}`));
    if (image.isDisposed) return Promise.reject(new TypeError('The image tensor passed to embedTensor has been disposed'));
    if (image.dtype !== 'uint8') return this.refuse(new InputError(`Expected a uint8 image tensor (pixels 0-255) but received ${image.dtype}`), options);
    const shape = image.shape;
    const [c, h, w] = shape.length === 2 ? [1, shape[0]!, shape[1]!] : shape.length === 3 ? [shape[0]!, shape[1]!, shape[2]!] : [0, 0, 0];
    if (c !== 1 && c !== 3) {
      return this.refuse(new InputError(`Expected an image tensor [C, H, W] with C = 1 or 3, or [H, W], but received shape [${shape.join(', ')}]`), options);
    }
    if (h * w > this.o.maxPixels) return this.refuse(new InputError(`The image has ${h} x ${w} pixels, more than the limit of ${this.o.maxPixels}`), options);
    if (h * w === 0) return this.refuse(new InputError(`The image tensor is empty (shape [${shape.join(', ')}])`), options);
    // HWC bytes on the CPU, made by libtorch (one native copy; no per-pixel JS on this thread).
    const hwc = scope(() => (shape.length === 2 ? image : image.permute(1, 2, 0)).contiguous().cpu().toTypedArray<'uint8'>());
    return this.enqueue<Float32Array>({ kind: 'pixels', bytes: hwc, height: h, width: w, channels: c as 1 | 3 }, options);
  }

  stats(): EncoderStats {
    const c = this.counts;
    const sizes = Array.from({ length: Math.max(c.sizes.length, 1) }, (_, k) => c.sizes[k] ?? 0);
    const sent = sizes.reduce((s, n, k) => s + n * k, 0);
    return {
      queued: this.preparing.size + this.queue.length, inFlight: this.inFlight?.length ?? 0, batches: c.batches, requests: c.requests, direct: c.direct,
      mainThreadDecoded: c.mainThreadDecoded,
      batchSizes: sizes, meanBatchSize: c.batches === 0 ? 0 : sent / c.batches, computeMs: c.computeMs, maxComputeMs: c.maxComputeMs,
    };
  }

  /**
   * Stops the encoder. drain (default true): requests already queued are
   * still answered first; false: they reject with ClosedError, as does the
   * batch in the worker. Either way later embed() calls reject with
   * ClosedError, and the promise resolves once the worker has exited. Like
   * a listening server, an open encoder keeps the process alive until closed.
   */
  async close(options: { drain?: boolean } = {}): Promise<void> {
    const first = !this.closing;
    this.closing = true;
    if (first) {
      if (options.drain ?? true) {
        this.flush();
        await new Promise<void>((resolve) => {
          this.drainWaiters.push(resolve);
          this.checkDrained();
        });
        // The decoder goes once the model thread has exited on its own: its exit
        // would otherwise stop() the encoder and terminate the model thread mid-dispose.
        this.worker.once('exit', () => void this.decoder.terminate());
        this.post({ type: 'close' }, []);
      } else {
        this.stop(new ClosedError('The encoder was closed before this request finished'));
      }
    }
    await this.exited;
  }

  private refuse(error: Error, options: EmbedRequestOptions): Promise<never> {
    if (this.closing) return Promise.reject(new ClosedError('The encoder is closed'));
    if (options.signal?.aborted) return Promise.reject(abortReason(options.signal));
    return Promise.reject(error);
  }

  /** T is what the worker answers for this item: features for embed, classes for classify. */
  private enqueue<T extends Float32Array | Classification[]>(image: RawImage, options: EmbedRequestOptions, topK?: number): Promise<T> {
    if (this.closing) return Promise.reject(new ClosedError('The encoder is closed'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const waiting = this.preparing.size + this.queue.length;
    if (waiting >= this.o.queueLimit) {
      const retryAfterMs = Math.ceil(this.batchMs * Math.ceil((waiting + 1) / this.o.maxBatch));
      return Promise.reject(new QueueFullError(`${waiting} requests are already waiting (queueLimit); retry in about ${retryAfterMs} ms`, retryAfterMs));
    }
    let timeoutMs: number;
    try {
      timeoutMs = option(options.timeoutMs, this.o.timeoutMs, 'timeoutMs', positiveFinite);
    } catch (e) {
      return Promise.reject(e);
    }
    this.counts.requests++;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const decodeId = ++this.decodeId;
      const drop = (error: unknown) => {
        if (!req.settle()) return;
        // Not yet sent: leave the queue (or the decoder's list), so it takes no place in a batch.
        this.preparing.delete(decodeId);
        const at = this.queue.indexOf(req);
        if (at >= 0) this.queue.splice(at, 1);
        reject(error);
        this.checkDrained();
      };
      const onAbort = () => drop(abortReason(signal!));
      const timer = setTimeout(() => drop(new TimeoutError(`The request did not finish within ${timeoutMs} ms`)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      const req: Request = {
        ...(topK === undefined ? {} : { topK }), pixels: null, resolve: resolve as (v: Float32Array | Classification[]) => void, reject,
        settle: () => {
          if (done) return false;
          done = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          return true;
        },
      };
      if (this.modelIdle()) {
        this.counts.direct++;
        if (image.kind === 'encoded' && topK === undefined && image.bytes.length <= LANE_INPUT_BYTES) {
          this.dispatch([req], (id) => this.lane.send(id, image.bytes).then(() => {
            const answer = this.lane.answer(id);
            // null: a bad image or a failure, which the model thread answers as a message.
            if (answer !== null) this.onMessage({ type: 'result', id, features: answer.features, top: [null], computeMs: answer.computeMs });
          }).catch((e: unknown) => this.stop(new ClosedError(`The encoder failed on its answer: ${(e as Error)?.message ?? String(e)}`, { cause: e }))));
        } else {
          this.dispatch([req], (id) => this.post({ type: 'image', id, item: image, maxPixels: this.o.maxPixels, ...(topK === undefined ? {} : { topK }) },
            [image.bytes.buffer as ArrayBuffer]));
        }
        return;
      }
      const target = { size: this.size, channels: this.channels as 1 | 3, maxPixels: this.o.maxPixels };
      // A small plain PNG is decoded here: for an image this small the two
      // hops to the decoding thread and back cost more than the decoding.
      const small = image.kind === 'encoded' && this.o.mainThreadPixels > 0 ? decodeSmallPng(image.bytes, this.o.mainThreadPixels, target) : null;
      if (small !== null) this.counts.mainThreadDecoded++;
      if (small !== null && 'ready' in small) {
        req.pixels = small.ready;
        this.queueReady(req);
        return;
      }
      // To the decoding thread at once: it prepares this image while the model computes the batch before.
      const item = small === null ? image : small.pixels;
      this.preparing.set(decodeId, req);
      this.decoder.postMessage({ id: decodeId, item, ...target } satisfies ToDecoder, [item.bytes.buffer as ArrayBuffer]);
    });
  }

  /** A prepared image joins the queue; a bad one is answered at once. */
  private onDecoded(m: FromDecoder): void {
    if ('ready' in m) return;
    const req = this.preparing.get(m.id);
    // Absent: timed out or aborted while decoding, or stopped.
    if (req === undefined) return;
    this.preparing.delete(m.id);
    if ('error' in m) {
      if (req.settle()) req.reject(new InputError(m.error));
      this.checkDrained();
      return;
    }
    req.pixels = m.pixels;
    this.queueReady(req);
  }

  /** A request whose pixels are ready joins the queue, and the next batch is sent or scheduled. */
  private queueReady(req: Request): void {
    this.queue.push(req);
    // Closing: a draining close waits for nothing but the answers.
    if (this.queue.length >= this.o.maxBatch || this.closing) this.flush();
    else if (this.timer === null && this.inFlight === null) {
      // setImmediate, not setTimeout(0) (at least 1 ms): images decoded in the same turn still share the batch
      this.timer = this.o.maxWaitMs === 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), this.o.maxWaitMs);
    }
  }

  /**
   * Whether a new request should go straight to the model thread: nothing
   * in the worker, nothing decoding or queued ahead of it, and no wait asked
   * for a batch to fill.
   */
  private modelIdle(): boolean {
    return this.o.maxWaitMs === 0 && this.inFlight === null && this.queue.length === 0 && this.preparing.size === 0;
  }

  /** Sends the next batch if the worker is free. */
  private flush(): void {
    if (this.timer !== null) {
      clearBatchTimer(this.timer);
      this.timer = null;
    }
    if (this.inFlight !== null || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.o.maxBatch);
    const items: ModelItem[] = batch.map((r) => (r.topK === undefined ? { pixels: r.pixels! } : { pixels: r.pixels!, topK: r.topK }));
    this.dispatch(batch, (id) => this.post({ type: 'batch', id, items }, items.map((it) => it.pixels.buffer as ArrayBuffer)));
  }

  /** Hands `batch` to the worker (send(id)), the only one in flight. */
  private dispatch(batch: Request[], send: (id: number) => void): void {
    this.inFlight = batch;
    this.counts.batches++;
    this.counts.sizes[batch.length] = (this.counts.sizes[batch.length] ?? 0) + 1;
    const id = ++this.batchId;
    this.sentAt = performance.now();
    send(id);
  }

  /** A message to the model thread, with its doorbell rung: the idle thread sleeps on it (./lane). */
  private post(message: ToWorker, transfer: ArrayBuffer[]): void {
    this.worker.postMessage(message, transfer);
    this.lane.ring();
  }

  private onMessage(m: FromWorker): void {
    if ((m.type !== 'result' && m.type !== 'failed' && m.type !== 'rejected') || this.inFlight === null || m.id !== this.batchId) return;
    const batch = this.inFlight;
    this.inFlight = null;
    this.batchMs = 0.8 * this.batchMs + 0.2 * (performance.now() - this.sentAt);
    if (m.type === 'rejected') {
      for (const r of batch) if (r.settle()) r.reject(new InputError(m.message));
    } else if (m.type === 'failed') {
      for (const r of batch) if (r.settle()) r.reject(new Error(`The encoder failed on a batch: ${m.message}`));
    } else {
      this.counts.computeMs += m.computeMs;
      this.counts.maxComputeMs = Math.max(this.counts.maxComputeMs, m.computeMs);
      let row = 0;
      batch.forEach((r, i) => {
        const answer = r.topK === undefined ? m.features.slice(row * this.width, ++row * this.width) : m.top[i];
        // A request that timed out or was aborted in flight has settled already; its row is dropped.
        if (!r.settle()) return;
        if (answer) r.resolve(answer);
        else r.reject(new Error('The encoder answered no classes for this image'));
      });
    }
    this.checkDrained();
    // Requests that arrived while the worker was busy have already waited for a whole batch; send them now.
    this.flush();
  }

  private checkDrained(): void {
    if (!this.closing || this.preparing.size > 0 || this.queue.length > 0 || this.inFlight !== null) return;
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /** Rejects everything pending and ends the worker (close without drain, or a worker that died). */
  private stop(error: Error): void {
    this.closing = true;
    if (this.timer !== null) clearBatchTimer(this.timer);
    this.timer = null;
    const pending = [...(this.inFlight ?? []), ...this.queue.splice(0), ...this.preparing.values()];
    this.preparing.clear();
    this.inFlight = null;
    for (const r of pending) if (r.settle()) r.reject(error);
    for (const resolve of this.drainWaiters.splice(0)) resolve();
    void this.worker.terminate();
    void this.decoder.terminate();
  }
}
