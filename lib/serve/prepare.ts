// A request's image brought to the model's input, exactly as `extrema embed`
// reads an image file (decodeImage; raw pixels get the same resize and
// crop). Both threads that may see a request's image run this: the
// decoding thread (./decode-worker) while the model is busy, and the model's
// own thread (./worker) for a request that finds the model idle; and the
// main thread itself for a small plain PNG (decodeSmallPng).
import { decodeImage, withChannels } from '../data/image-folder';
import { cropWithoutResize, resizeShorterAndCenterCrop } from '../data/preprocess';
import { decodePlainPng } from '../io/png';
import type { RawImage } from './encoder';

/** The model input's square side and channels, and the pixel limit checked before decoding. */
export interface Target { size: number; channels: 1 | 3; maxPixels: number }

/** The model's input pixels (size x size x channels, uint8) of one image. */
export async function prepareImage(item: RawImage, to: Target): Promise<Uint8Array> {
  if (item.kind === 'pixels') {
    const data = withChannels(item.bytes, item.channels, to.channels);
    return resizeShorterAndCenterCrop(data, item.height, item.width, to.channels, to.size);
  }
  return (await decodeImage(item.bytes, { channels: to.channels, size: to.size, maxPixels: to.maxPixels })).data;
}

/** What the client is told: decodeImage's own message for a bad image, or what failed in preprocessing. */
export function preparationError(e: unknown, kind: RawImage['kind']): string {
  const message = (e as Error)?.message ?? String(e);
  return kind === 'encoded' || e instanceof RangeError ? message : `Cannot preprocess the image: ${message}`;
}

/**
 * For the main thread: a small plain PNG (lib/io/png.ts, at most `pixels`
 * pixels and maxPixels) decoded here, in bounded work: the file's bytes are
 * capped from the pixels before anything is read, the inflated data by its
 * header. ready: the model's input (the file needed no resampling);
 * pixels: the decoded image, which still needs sharp's resize on another
 * thread; null: not such a file, for the decoding thread to read whole.
 * The same pixels prepareImage gives, since decodeImage takes the same fast path.
 */
export function decodeSmallPng(bytes: Uint8Array, pixels: number, to: Target): { ready: Uint8Array } | { pixels: Extract<RawImage, { kind: 'pixels' }> } | null {
  const limit = Math.min(pixels, to.maxPixels);
  // RGB rows and their filter bytes even stored uncompressed, and room for the chunks around them.
  if (limit < 1 || bytes.length > limit * 4 + 4096) return null;
  const png = decodePlainPng(bytes, limit);
  if (png === null) return null;
  const data = withChannels(png.data, png.channels, to.channels);
  const ready = cropWithoutResize(data, png.height, png.width, to.channels, to.size);
  if (ready !== null) return { ready };
  return { pixels: { kind: 'pixels', bytes: data, height: png.height, width: png.width, channels: to.channels } };
}
