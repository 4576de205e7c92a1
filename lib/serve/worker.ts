// The thread that owns an Encoder's model (see ./encoder). It loads the model
// exactly as `extrema embed` (a pretraining checkpoint) or `extrema predict`
// (a fine-tuned classifier) does and runs each batch's forward pass here, so
// the main thread's event loop never waits on the model. A batch comes as
// pixels the decoding thread (./decode-worker) already brought to the
// model's size; a request that found the model idle comes alone, as its
// image, and is prepared here first (./prepare): that spares it the round
// trip through the decoding thread, which only pays off while the model is
// busy. Such a request comes through shared memory (./lane) when it can,
// and the idle thread sleeps on the lane's doorbell, not in its event loop.
import * as fs from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { inferenceMode } from '../autograd';
import type { ImageDataset } from '../data/dataset';
import { defaultNormalization, normalizeNhwc, pixelTensor, type Normalization } from '../data/preprocess';
import { loadEncoder } from '../extrema/checkpoint';
import { CLASSIFIER_FORMAT, loadClassifier } from '../eval/classifier-checkpoint';
import { predictDataset, storedNormalization } from '../eval/predict';
import { packForInference } from '../nn/pack-for-inference';
import { Lane } from './lane';
import { TraceCache } from './trace-cache';
import { setNumThreads } from '../runtime/device-runtime';
import { assertDevice, type Device } from '../tensor/device';
import { scope } from '../tensor/scope';
import { normalize } from '../tensor/functional';
import type { Tensor } from '../tensor/tensor';
import type { Classification, FromWorker, ModelItem, ToWorker, WorkerInit } from './encoder';
import { preparationError, prepareImage } from './prepare';

const init = workerData as WorkerInit;
/** Operator traces the worker keeps, one per batch size (200-300 KB each for the demo model, besides the weights they share with it). */
const MAX_TRACES = 64;
/** Longest the idle thread sleeps on its doorbell before its event loop turns once. */
const IDLE_SLEEP_MS = 500;
const port = parentPort;
if (port === null) throw new Error('lib/serve/worker is the Encoder\'s worker thread; open it with Encoder.open');

/** What the batch loop needs from either kind of checkpoint. */
interface Model {
  size: number;
  channels: 1 | 3;
  width: number;
  norm: Normalization;
  /** [n, width] features of n normalised images. */
  features(x: Tensor): Tensor;
  classifier: { classes: string[] | null; numClasses: number; classify(pixels: Uint8Array[], topK: number): Promise<Classification[][]> } | null;
  /** Packs the Linear layers for inference (nn.packForInference); how many were packed. */
  pack(): number;
  dispose(): void;
}

/** Whether `file` is a safetensors file that saveClassifier wrote, from its header alone (the weights are read once, by the loader). */
function isClassifierFile(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const length = Buffer.alloc(8);
    if (fs.readSync(fd, length, 0, 8, 0) !== 8) return false;
    const n = length.readBigUInt64LE(0);
    // A .pth (zip) or a damaged file is not a classifier; the encoder loader then says what it is.
    if (n > 100_000_000n) return false;
    const header = Buffer.alloc(Number(n));
    if (fs.readSync(fd, header, 0, header.length, 8) !== header.length) return false;
    const meta = (JSON.parse(header.toString('utf8')) as { __metadata__?: { format?: unknown } }).__metadata__;
    return meta?.format === CLASSIFIER_FORMAT;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * predictToFile's normalisation: the {mean, std} a fine-tuning run stored
 * under "normalization", over the default for the channels.
 */
function classifierNormalization(file: string, channels: number, text: string | undefined): Normalization {
  const norm = defaultNormalization(channels);
  const stored = storedNormalization(file, text);
  return { mean: stored.mean ?? norm.mean, std: stored.std ?? norm.std };
}

function squareInput(h: number, w: number, channels: number): { size: number; channels: 1 | 3 } {
  // The same limits as embedToFile, so a model that serves is one that embeds.
  if (h !== w) throw new RangeError(`the encoder serves square model inputs; this model takes ${h}x${w}`);
  if (channels !== 1 && channels !== 3) throw new RangeError(`the encoder reads images with 1 or 3 channels; this model takes ${channels}`);
  return { size: h, channels };
}

function openClassifier(device: Device): Model {
  const { model, classes, metadata, extra } = loadClassifier(init.checkpoint, { device });
  for (const t of extra.values()) t.dispose();
  const enc = model.config.encoder;
  const { size, channels } = squareInput(enc.imgSize[0], enc.imgSize[1], enc.inChans);
  const norm = classifierNormalization(init.checkpoint, channels, metadata.normalization);
  return {
    size, channels, width: enc.embedDim, norm,
    features: (x) => model.features(x),
    classifier: {
      classes, numClasses: model.numClasses,
      // predictDataset over the batch's preprocessed pixels: the softmax and
      // top-k of `extrema predict`, not a second copy of them.
      async classify(pixels, topK) {
        const data: ImageDataset = {
          kind: 'files', path: '(request)', count: pixels.length, size, channels, labels: null, classes: null, files: null,
          describe: `${pixels.length} requested images`, read: async (i) => pixels[i] as Uint8Array, name: (i) => `image ${i} of the batch`,
        };
        const preds = await predictDataset(model, data, { topK, batchSize: pixels.length, device, classes, mean: norm.mean, std: norm.std, packWeights: init.packWeights });
        return preds.map((p) => p.top.map((t) => ({ label: t.name ?? t.class, index: t.class, probability: t.probability })));
      },
    },
    pack: () => packForInference(model).packed,
    dispose: () => model.dispose(),
  };
}

function openEncoder(device: Device): Model {
  const { encoder, config } = loadEncoder(init.checkpoint, { numHeads: init.heads, device, which: init.which });
  const [h, w] = config.encoder.imgSize;
  const { size, channels } = squareInput(h, w, config.encoder.inChans);
  return {
    size, channels, width: config.encoder.embedDim, norm: defaultNormalization(channels),
    features: (x) => encoder.encode(x).instance, classifier: null,
    pack: () => packForInference(encoder).packed, dispose: () => encoder.dispose(),
  };
}

function main(): void {
  if (init.threads !== undefined) setNumThreads(init.threads);
  const device = assertDevice(init.device, 'device');
  const model = isClassifierFile(init.checkpoint) ? openClassifier(device) : openEncoder(device);
  // Packed once for the worker's life; predictDataset (classify) then finds the layers packed already.
  const packedLinears = init.packWeights ? model.pack() : 0;
  const { size, channels, norm } = model;
  const item = size * size * channels;

  const forward = (x: Tensor): Tensor => {
    const f = model.features(x);
    return init.normalize ? normalize(f, 2, 1) : f;
  };
  // From the uint8 pixels [N, H, W, C]: the normalisation is traced with the model.
  const fromPixels = (raw: Tensor): Tensor => forward(normalizeNhwc(raw, norm));
  // One operator trace per batch size: the same operators, without the model's JavaScript.
  const traces = new TraceCache(MAX_TRACES);
  // Inference mode: the forward pass without autograd bookkeeping; the features are copied out.
  const embed = (pixels: Uint8Array, n: number): Float32Array<ArrayBuffer> => inferenceMode(() => scope(() => {
    const raw = pixelTensor(pixels, n, size, size, channels, device);
    const rows = init.trace ? traces.run(n, raw, fromPixels) : fromPixels(raw);
    // A copy we own, so its buffer can be transferred back.
    return new Float32Array(rows.to({ device: 'cpu', dtype: 'float32' }).toTypedArray<'float32'>());
  }));

  // The first forward pass allocates and picks kernels; pay for it before serving.
  const warmStart = performance.now();
  embed(new Uint8Array(item), 1);
  const warmupMs = performance.now() - warmStart;

  async function serve(id: number, items: ModelItem[]): Promise<FromWorker> {
    for (const it of items) {
      if (it.pixels.length !== item) throw new Error(`Expected ${item} bytes of preprocessed pixels per image but received ${it.pixels.length}`);
    }
    const toEmbed = items.filter((it) => it.topK === undefined);
    const toClassify = items.flatMap((it, at) => (it.topK === undefined ? [] : [{ at, pixels: it.pixels, topK: it.topK }]));
    let features: Float32Array<ArrayBuffer> = new Float32Array(0);
    const top: (Classification[] | null)[] = items.map(() => null);
    const start = performance.now();
    if (toEmbed.length > 0) {
      const packed = new Uint8Array(toEmbed.length * item);
      toEmbed.forEach((it, i) => packed.set(it.pixels, i * item));
      features = embed(packed, toEmbed.length);
    }
    if (toClassify.length > 0) {
      if (model.classifier === null) throw new Error('this checkpoint is an encoder, not a classifier');
      // One pass at the largest k asked for; each request keeps its own first k (top-k is sorted).
      const k = Math.max(...toClassify.map((c) => c.topK));
      const rows = await model.classifier.classify(toClassify.map((c) => c.pixels), k);
      toClassify.forEach((c, i) => { top[c.at] = (rows[i] as Classification[]).slice(0, c.topK); });
    }
    return { type: 'result', id, features, top, computeMs: performance.now() - start };
  }

  /** A request sent alone to the idle model: its image prepared here, then a batch of one. */
  async function serveImage(msg: Extract<ToWorker, { type: 'image' }>): Promise<FromWorker> {
    let pixels: Uint8Array;
    try {
      pixels = await prepareImage(msg.item, { size, channels, maxPixels: msg.maxPixels });
    } catch (e) {
      return { type: 'rejected', id: msg.id, message: preparationError(e, msg.item.kind) };
    }
    return serve(msg.id, [msg.topK === undefined ? { pixels } : { pixels, topK: msg.topK }]);
  }

  // Work is handled one piece at a time, in order: a batch or an image from
  // a message, or the lane's request. The main thread sends the next only
  // after this one's answer.
  const lane = Lane.create(model.width);
  let chain = Promise.resolve();
  /** Work taken but not yet answered. */
  let busy = 0;
  let closed = false;
  const then = (work: () => Promise<void>): void => {
    busy++;
    // work answers its own errors; one that escapes (a reply that cannot be
    // posted) is the main thread's timeout to report, and must not stop the chain.
    chain = chain.then(work).catch(() => undefined).finally(() => {
      if (--busy === 0) idleSoon();
    });
  };
  const handle = (msg: ToWorker): void => {
    if (msg.type === 'close') {
      closed = true;
      chain = chain.then(() => {
        traces.dispose();
        model.dispose();
        port!.close();
      });
      return;
    }
    then(async () => {
      let reply: FromWorker;
      try {
        reply = msg.type === 'image' ? await serveImage(msg) : await serve(msg.id, msg.items);
      } catch (e) {
        reply = { type: 'failed', id: msg.id, message: (e as Error)?.message ?? String(e) };
      }
      port!.postMessage(reply, reply.type === 'result' ? [reply.features.buffer] : []);
    });
  };
  /** The lane's request: answered in the lane, or, when it is not a result, as a message. */
  const handleLane = ({ id, bytes }: { id: number; bytes: Uint8Array }): void => {
    then(async () => {
      let reply: FromWorker;
      try {
        reply = await serveImage({ type: 'image', id, item: { kind: 'encoded', bytes }, maxPixels: init.maxPixels });
        if (reply.type === 'result') return lane.answerWith(reply.features, reply.computeMs);
      } catch (e) {
        reply = { type: 'failed', id, message: (e as Error)?.message ?? String(e) };
      }
      lane.answerByMessage();
      port!.postMessage(reply);
    });
  };
  port!.on('message', handle);
  // Idle, this thread sleeps on the lane's doorbell (a futex) instead of in
  // its event loop, and takes what woke it synchronously: the lane's request,
  // or messages with receiveMessageOnPort. The event loop turns again as
  // soon as there is work, which may await (sharp's decoding, classify).
  let idleScheduled = false;
  const takeWork = (): boolean => {
    let taken = false;
    for (let m = receiveMessageOnPort(port!); m !== undefined; m = receiveMessageOnPort(port!)) {
      handle(m.message as ToWorker);
      taken = true;
    }
    const request = lane.take();
    if (request !== null) handleLane(request);
    return taken || request !== null;
  };
  const idle = (): void => {
    idleScheduled = false;
    if (busy > 0 || closed) return;
    const count = lane.rung();
    if (takeWork()) return;
    // Bounded, so that the event loop still turns now and then.
    lane.sleep(count, IDLE_SLEEP_MS);
    if (!takeWork()) idleSoon();
  };
  function idleSoon(): void {
    if (idleScheduled || closed) return;
    idleScheduled = true;
    setImmediate(idle);
  }
  idleSoon();
  const classifier = model.classifier === null ? null : { classes: model.classifier.classes, numClasses: model.classifier.numClasses };
  // The warm-up pass recorded the first trace, or found that this model cannot be traced.
  const traced = init.trace && traces.refused === null;
  port!.postMessage({ type: 'ready', lane: lane.shared, width: model.width, size, channels, warmupMs, packedLinears, traced, classifier } satisfies FromWorker);
}

try {
  main();
} catch (e) {
  port.postMessage({ type: 'fatal', message: (e as Error)?.message ?? String(e) } satisfies FromWorker);
  port.close();
}
