// A request's image brought to the model's input, exactly as `extrema embed`
// reads an image file (decodeImage; raw pixels get the same resize and
// crop). Both threads that may see a request's image run this: the
// decoding thread (./decode-worker) while the model is busy, and the model's
// own thread (./worker) for a request that finds the model idle.
import { decodeImage, grayToRgb, rgbToGray } from '../data/image-folder';
import { resizeShorterAndCenterCrop } from '../data/preprocess';
import type { RawImage } from './encoder';

/** The model input's square side and channels, and the pixel limit checked before decoding. */
export interface Target { size: number; channels: 1 | 3; maxPixels: number }

/** The model's input pixels (size x size x channels, uint8) of one image. */
export async function prepareImage(item: RawImage, to: Target): Promise<Uint8Array> {
  if (item.kind === 'pixels') {
    let data = item.bytes;
    if (item.channels === 3 && to.channels === 1) data = rgbToGray(data);
    else if (item.channels === 1 && to.channels === 3) data = grayToRgb(data);
    return resizeShorterAndCenterCrop(data, item.height, item.width, to.channels, to.size);
  }
  return (await decodeImage(item.bytes, { channels: to.channels, size: to.size, maxPixels: to.maxPixels })).data;
}

/** What the client is told: decodeImage's own message for a bad image, or what failed in preprocessing. */
export function preparationError(e: unknown, kind: RawImage['kind']): string {
  const message = (e as Error)?.message ?? String(e);
  return kind === 'encoded' || e instanceof RangeError ? message : `Cannot preprocess the image: ${message}`;
}
