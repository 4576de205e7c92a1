// The Encoder's decoding thread (see ./encoder). Each request's image goes
// here as soon as it arrives and comes back as the model's input pixels,
// read exactly as `extrema embed` reads an image file (decodeImage; raw
// pixels get the same resize and crop). It runs beside the model's thread,
// so the next batch is decoded while the current one computes instead of
// after it, and the main thread's event loop never does per-pixel work.
import { parentPort } from 'node:worker_threads';
import { decodeImage, grayToRgb, rgbToGray } from '../data/image-folder';
import { resizeShorterAndCenterCrop } from '../data/preprocess';
import type { FromDecoder, ToDecoder } from './encoder';

const port = parentPort;
if (port === null) throw new Error('lib/serve/decode-worker is the Encoder\'s decoding thread; open it with Encoder.open');

async function prepare(m: ToDecoder): Promise<Uint8Array> {
  const it = m.item;
  if (it.kind === 'pixels') {
    let data = it.bytes;
    if (it.channels === 3 && m.channels === 1) data = rgbToGray(data);
    else if (it.channels === 1 && m.channels === 3) data = grayToRgb(data);
    return resizeShorterAndCenterCrop(data, it.height, it.width, m.channels, m.size);
  }
  return (await decodeImage(it.bytes, { channels: m.channels, size: m.size, maxPixels: m.maxPixels })).data;
}

/** What the client is told: decodeImage's own message for a bad image, or what failed in preprocessing. */
function reason(e: unknown, kind: 'encoded' | 'pixels'): string {
  const message = (e as Error)?.message ?? String(e);
  return kind === 'encoded' || e instanceof RangeError ? message : `Cannot preprocess the image: ${message}`;
}

port.on('message', (m: ToDecoder) => {
  prepare(m).then((data) => {
    // Transfer only a buffer these bytes own whole: a view may sit in a shared pool.
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
    port.postMessage({ id: m.id, pixels: own } satisfies FromDecoder, [own.buffer as ArrayBuffer]);
  }, (e: unknown) => {
    port.postMessage({ id: m.id, error: reason(e, m.item.kind) } satisfies FromDecoder);
  });
});
port.postMessage({ ready: true } satisfies FromDecoder);
