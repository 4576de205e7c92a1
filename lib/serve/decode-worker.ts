// The Encoder's decoding thread (see ./encoder). A request that arrives while
// the model is busy has its image prepared here (./prepare) at once, so the
// next batch is decoded while the current one computes instead of after it,
// and the main thread's event loop does no per-pixel work beyond small
// plain PNGs (the Encoder's mainThreadPixels).
import { parentPort } from 'node:worker_threads';
import type { FromDecoder, ToDecoder } from './encoder';
import { preparationError, prepareImage } from './prepare';

const port = parentPort;
if (port === null) throw new Error('lib/serve/decode-worker is the Encoder\'s decoding thread; open it with Encoder.open');

port.on('message', (m: ToDecoder) => {
  prepareImage(m.item, m).then((data) => {
    // Transfer only a buffer these bytes own whole: a view may sit in a shared pool.
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
    port.postMessage({ id: m.id, pixels: own } satisfies FromDecoder, [own.buffer as ArrayBuffer]);
  }, (e: unknown) => {
    port.postMessage({ id: m.id, error: preparationError(e, m.item.kind) } satisfies FromDecoder);
  });
});
port.postMessage({ ready: true } satisfies FromDecoder);
