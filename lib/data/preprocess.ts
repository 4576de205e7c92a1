// The evaluation transform: resize so the shorter side equals the model's input
// size, centre-crop a size x size square, scale to [0, 1] and normalise each
// channel. Images are HWC uint8 (what decoders produce) until the last step,
// which builds a float32 NCHW tensor with tensor ops.
//
// Resizing follows torchvision's Resize(size) + CenterCrop(size) geometry:
// the longer side becomes floor(size * long / short), and the crop offset is
// round((side - size) / 2) with Python's round-half-to-even. Pixels are
// resampled by sharp (libvips) with its bilinear ('linear') kernel, which like
// torchvision's default (antialias=True) widens the kernel when shrinking;
// values can still differ from torchvision's by a few levels. The same code
// path serves in-memory IDX arrays and decoded files, so both are treated alike.
import sharp from 'sharp';
import { fromTypedArray } from '../tensor/creation';
import { checkNormalization, normalize } from './color';
import { positiveInt } from '../checks';
import type { Device } from '../tensor/device';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';

export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);
/** For one-channel (grayscale) images: maps [0, 1] to [-1, 1]. */
export const GRAY_MEAN: readonly number[] = Object.freeze([0.5]);
export const GRAY_STD: readonly number[] = Object.freeze([0.5]);

export interface Normalization {
  mean: number[];
  std: number[];
}

/** ImageNet statistics for 3 channels, 0.5 / 0.5 for 1 channel. */
export function defaultNormalization(channels: number): Normalization {
  if (channels === 3) return { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
  if (channels === 1) return { mean: [...GRAY_MEAN], std: [...GRAY_STD] };
  throw new RangeError(`Expected 1 or 3 channels but received ${String(channels)}`);
}

/** @internal shared with ./source */
export function checkChannels(c: unknown): 1 | 3 {
  if (c !== 1 && c !== 3) throw new RangeError(`Expected 1 or 3 channels but received ${String(c)}`);
  return c;
}

function checkPixels(data: unknown, count: number, what: string): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError(`Expected a Uint8Array for ${what} but received ${Object.prototype.toString.call(data)}`);
  if (data.length !== count) throw new RangeError(`Expected ${count} bytes for ${what} but received ${data.length}`);
  return data;
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The size after resizing the shorter side to `size` (torchvision's rule: the longer side is truncated). */
export function resizedSize(height: number, width: number, size: number): { height: number; width: number } {
  if (height <= width) return { height: size, width: Math.floor((size * width) / height) };
  return { height: Math.floor((size * height) / width), width: size };
}

/** Top-left corner of the centred size x size crop (torchvision's CenterCrop offsets). */
export function centerCropOffset(height: number, width: number, size: number): { top: number; left: number } {
  return { top: roundHalfEven((height - size) / 2), left: roundHalfEven((width - size) / 2) };
}

/** Copies the centred size x size window out of an HWC image (which must be at least size x size). */
export function centerCrop(hwc: Uint8Array, h: number, w: number, c: number, size: number): Uint8Array {
  checkPixels(hwc, h * w * c, 'the image');
  if (h < size || w < size) throw new RangeError(`Expected an image of at least ${size} x ${size} to crop but received ${h} x ${w}`);
  if (h === size && w === size) return hwc;
  const { top, left } = centerCropOffset(h, w, size);
  const out = new Uint8Array(size * size * c);
  const row = size * c;
  for (let y = 0; y < size; y++) {
    const from = ((top + y) * w + left) * c;
    out.set(hwc.subarray(from, from + row), y * row);
  }
  return out;
}

/**
 * resizeShorterAndCenterCrop's answer where it needs no resampling: the
 * image itself when it is size x size, its centre crop when its shorter
 * side is size already; null when it must be resized (sharp, asynchronous).
 */
export function cropWithoutResize(hwc: Uint8Array, h: number, w: number, c: number, size: number): Uint8Array | null {
  if (h === size && w === size) return hwc;
  const target = resizedSize(h, w, size);
  return target.height === h && target.width === w ? centerCrop(hwc, h, w, c, size) : null;
}

/**
 * Resizes an HWC uint8 image so its shorter side equals `size` (bilinear, by
 * sharp) and centre-crops it to size x size (c = 1 or 3). An image already
 * size x size is returned as it is (the same array, not resampled); one whose
 * shorter side already equals size is only cropped.
 */
export async function resizeShorterAndCenterCrop(hwc: Uint8Array, h: number, w: number, c: number, size: number): Promise<Uint8Array> {
  positiveInt(h, 'the height');
  positiveInt(w, 'the width');
  const channels = checkChannels(c);
  positiveInt(size, 'the size');
  checkPixels(hwc, h * w * c, `a ${h} x ${w} x ${c} image`);
  const cropped = cropWithoutResize(hwc, h, w, c, size);
  if (cropped !== null) return cropped;
  const target = resizedSize(h, w, size);
  let pipeline = sharp(hwc, { raw: { width: w, height: h, channels } }).resize(target.width, target.height, { fit: 'fill', kernel: 'linear' });
  // A one-band raw input is black-and-white to libvips; without this sharp
  // would write it out as three identical sRGB bands.
  if (c === 1) pipeline = pipeline.toColourspace('b-w');
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.width !== target.width || info.height !== target.height || info.channels !== c) {
    throw new Error(`Expected sharp to resize to ${target.height} x ${target.width} x ${c} but received ${info.height} x ${info.width} x ${info.channels}`);
  }
  return centerCrop(new Uint8Array(data.buffer, data.byteOffset, data.length), target.height, target.width, c, size);
}

/**
 * Normalised float32 images from uint8 [N, C, H, W] pixels: (x / 255 -
 * mean[c]) / std[c] (default: defaultNormalization(C)), on the pixels'
 * device. The one normalisation of the evaluation path (embedding, kNN,
 * attention maps); training views go through the augmentation instead.
 */
export function normalizeImages(pixels: Tensor, norm: Partial<Normalization> = {}): Tensor {
  if (pixels?.dtype !== 'uint8' || pixels.ndim !== 4) {
    throw new TypeError(`Expected uint8 images [N, C, H, W] but received ${pixels?.dtype ?? String(pixels)} [${pixels?.shape?.join(', ') ?? ''}]`);
  }
  const c = checkChannels(pixels.shape[1]);
  const defaults = defaultNormalization(c);
  const mean = norm.mean ?? defaults.mean;
  const std = norm.std ?? defaults.std;
  checkNormalization(mean, std, c);
  return scope(() => normalize(pixels.float().div(255), mean, std));
}

/**
 * A float32 N x C x H x W tensor from N*H*W*C uint8 pixels (NHWC), normalised
 * as normalizeImages does, computed on `device` (the uint8 bytes are moved
 * first, a quarter of the float size). The caller owns the result.
 */
export function toNormalizedTensor(
  batch: Uint8Array,
  n: number,
  h: number,
  w: number,
  c: number,
  mean: readonly number[],
  std: readonly number[],
  device?: Device,
): Tensor {
  return scope(() => normalizeNhwc(pixelTensor(batch, n, h, w, c, device), { mean: [...mean], std: [...std] }));
}

/** The uint8 tensor [N, H, W, C] of N*H*W*C pixels, on `device`: the first half of toNormalizedTensor. */
export function pixelTensor(batch: Uint8Array, n: number, h: number, w: number, c: number, device?: Device): Tensor {
  positiveInt(n, 'the batch size');
  positiveInt(h, 'the height');
  positiveInt(w, 'the width');
  checkChannels(c);
  checkPixels(batch, n * h * w * c, `a ${n} x ${h} x ${w} x ${c} batch`);
  return fromTypedArray(batch, [n, h, w, c], device === undefined ? undefined : { device });
}

/**
 * normalizeImages of uint8 images [N, H, W, C]: the second half of
 * toNormalizedTensor, all tensor operators, so an operator trace can replay
 * it with the model (the serving worker does).
 */
export function normalizeNhwc(pixels: Tensor, norm: Partial<Normalization> = {}): Tensor {
  if (pixels?.dtype !== 'uint8' || pixels.ndim !== 4) {
    throw new TypeError(`Expected uint8 images [N, H, W, C] but received ${pixels?.dtype ?? String(pixels)} [${pixels?.shape?.join(', ') ?? ''}]`);
  }
  // The uint8 permute is made contiguous first so every later op is NCHW.
  return scope(() => normalizeImages(pixels.permute(0, 3, 1, 2).contiguous(), norm));
}
