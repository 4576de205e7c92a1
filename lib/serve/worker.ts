// The thread that owns an Encoder's model (see ./encoder). It loads the
// encoder exactly as `extrema embed` does, decodes and preprocesses each
// batch's images exactly as an image folder is read, and runs the forward
// pass here, so the main thread's event loop never waits on the model.
import { parentPort, workerData } from 'node:worker_threads';
import { noGrad } from '../autograd';
import { decodeImage, rgbToGray, grayToRgb } from '../data/image-folder';
import { defaultNormalization, resizeShorterAndCenterCrop, toNormalizedTensor } from '../data/preprocess';
import { loadEncoder } from '../extrema/checkpoint';
import { setNumThreads } from '../runtime/device-runtime';
import { assertDevice } from '../tensor/device';
import { scope } from '../tensor/scope';
import { normalize } from '../tensor/functional';
import type { BatchItem, FromWorker, ToWorker, WorkerInit } from './encoder';

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('lib/serve/worker is the Encoder\'s worker thread; open it with Encoder.open');

/** A message for the client: what was wrong with its image, not a stack. */
class BadInput extends Error {}

function main(): void {
  if (init.threads !== undefined) setNumThreads(init.threads);
  const device = assertDevice(init.device, 'device');
  const { encoder, config } = loadEncoder(init.checkpoint, { numHeads: init.heads, device, which: init.which });
  const [h, w] = config.encoder.imgSize;
  const channels = config.encoder.inChans;
  // The same limits as embedToFile, so a model that serves is one that embeds.
  if (h !== w) throw new RangeError(`the encoder serves square model inputs; this model takes ${h}x${w}`);
  if (channels !== 1 && channels !== 3) throw new RangeError(`the encoder reads images with 1 or 3 channels; this model takes ${channels}`);
  const size = h;
  const norm = defaultNormalization(channels);
  const item = size * size * channels;
  const width = config.encoder.embedDim;

  const forward = (pixels: Uint8Array, n: number): Float32Array<ArrayBuffer> => noGrad(() => scope(() => {
    const x = toNormalizedTensor(pixels, n, size, size, channels, norm.mean, norm.std, device);
    const { instance } = encoder.encode(x);
    const rows = init.normalize ? normalize(instance, 2, 1) : instance;
    // A copy we own, so its buffer can be transferred back.
    return new Float32Array(rows.to({ device: 'cpu', dtype: 'float32' }).toTypedArray<'float32'>());
  }));

  // The first forward pass allocates and picks kernels; pay for it before serving.
  const warmStart = performance.now();
  forward(new Uint8Array(item), 1);
  const warmupMs = performance.now() - warmStart;

  async function decode(it: BatchItem): Promise<Uint8Array> {
    if (it.kind === 'pixels') {
      let data = it.bytes;
      if (it.channels === 3 && channels === 1) data = rgbToGray(data);
      else if (it.channels === 1 && channels === 3) data = grayToRgb(data);
      return resizeShorterAndCenterCrop(data, it.height, it.width, channels, size);
    }
    // the one decoder of `extrema embed`, on bytes, with the pixel limit checked from the header
    try {
      return (await decodeImage(it.bytes, { channels: channels as 1 | 3, size, maxPixels: init.maxPixels })).data;
    } catch (e) {
      throw new BadInput((e as Error).message);
    }
  }

  async function serve(id: number, items: BatchItem[]): Promise<FromWorker> {
    const decoded = await Promise.allSettled(items.map(decode));
    const errors: (string | null)[] = decoded.map((d) => d.status === 'fulfilled' ? null
      : d.reason instanceof BadInput || d.reason instanceof RangeError ? (d.reason as Error).message
        : `Cannot preprocess the image: ${(d.reason as Error)?.message ?? String(d.reason)}`);
    const good = decoded.flatMap((d) => d.status === 'fulfilled' ? [d.value] : []);
    let features: Float32Array<ArrayBuffer> = new Float32Array(0);
    let computeMs = 0;
    if (good.length > 0) {
      const packed = new Uint8Array(good.length * item);
      good.forEach((p, i) => packed.set(p, i * item));
      const start = performance.now();
      features = forward(packed, good.length);
      computeMs = performance.now() - start;
    }
    return { type: 'result', id, features, errors, computeMs };
  }

  // Batches are handled one at a time, in order; the main thread sends the next only after this one's result.
  let chain = Promise.resolve();
  port!.on('message', (msg: ToWorker) => {
    if (msg.type === 'close') {
      chain = chain.then(() => {
        encoder.dispose();
        port!.close();
      });
      return;
    }
    chain = chain.then(async () => {
      let reply: FromWorker;
      try {
        reply = await serve(msg.id, msg.items);
      } catch (e) {
        reply = { type: 'failed', id: msg.id, message: (e as Error)?.message ?? String(e) };
      }
      port!.postMessage(reply, reply.type === 'result' ? [reply.features.buffer] : []);
    });
  });
  port!.postMessage({ type: 'ready', width, size, channels, warmupMs } satisfies FromWorker);
}

try {
  main();
} catch (e) {
  port.postMessage({ type: 'fatal', message: (e as Error)?.message ?? String(e) } satisfies FromWorker);
  port.close();
}
