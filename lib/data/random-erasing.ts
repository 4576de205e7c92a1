// Random erasing for fine-tuning, as timm's RandomErasing(probability=p,
// mode='pixel', max_count=1) that the authors' BEiT-based fine-tuning
// applies to normalised images: per image, with probability p, one box of
// area U(0.02, 1/3) of the image and aspect ratio exp(U(log 0.3, log 1/0.3))
// (up to 10 attempts until it fits strictly inside), filled with standard
// normal noise per pixel and channel.
//
// Batched: the boxes are B small draws computed in JS; the noise is one
// randn over the batch and the erase one masked select on the device.
// Images that are not erased come back bit for bit.
import { arange, fromTypedArray, randn } from '../tensor/creation';
import { where } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { fail, probability } from '../checks';
import { checkImages, drawUniform } from './color';
import { roundHalfEven } from './preprocess';

const MIN_AREA = 0.02;
const MAX_AREA = 1 / 3;
const LOG_ASPECT: readonly [number, number] = [Math.log(0.3), Math.log(1 / 0.3)];
const ATTEMPTS = 10;
/** Uniforms per image: apply, 10 x (area, log-aspect), top, left. */
const UNIFORMS_PER_IMAGE = 3 + 2 * ATTEMPTS;

/**
 * Erase boxes for B images from uniforms (UNIFORMS_PER_IMAGE per image):
 * [top, left, height, width] per image, height 0 where the image is kept
 * (not drawn with probability p, or no attempt fitted).
 */
export function erasingBoxesFromUniforms(u: ArrayLike<number>, b: number, height: number, width: number, p: number): Int32Array {
  const out = new Int32Array(4 * b);
  const area = height * width;
  for (let i = 0; i < b; i++) {
    const o = i * UNIFORMS_PER_IMAGE;
    // timm skips when random() > p; u < p is the same event up to measure zero.
    if (!(u[o]! < p)) continue;
    for (let a = 0; a < ATTEMPTS; a++) {
      const target = (MIN_AREA + (MAX_AREA - MIN_AREA) * u[o + 1 + 2 * a]!) * area;
      const aspect = Math.exp(LOG_ASPECT[0] + (LOG_ASPECT[1] - LOG_ASPECT[0]) * u[o + 2 + 2 * a]!);
      const h = roundHalfEven(Math.sqrt(target * aspect));
      const w = roundHalfEven(Math.sqrt(target / aspect));
      if (w < width && h < height) {
        out[4 * i] = Math.min(height - h, Math.floor(u[o + 21]! * (height - h + 1)));
        out[4 * i + 1] = Math.min(width - w, Math.floor(u[o + 22]! * (width - w + 1)));
        out[4 * i + 2] = h;
        out[4 * i + 3] = w;
        break;
      }
    }
  }
  return out;
}

/**
 * Erases one random box per image with probability p (see the file comment).
 * images: normalised float [B, C, H, W]; returns a new tensor. Draws B x 23
 * float64 uniforms, then a standard normal per pixel of the batch, from
 * `generator` (the default generators when omitted); the uniforms, which are
 * read back to JS, from the CPU `hostGenerator` when given.
 */
export function randomErasing(images: Tensor, p: number, generator?: Generator, hostGenerator?: Generator): Tensor {
  const x = checkImages(images);
  probability(p, 'the random erasing probability');
  if (!x.dtype.startsWith('float') && x.dtype !== 'bfloat16') fail('floating-point normalised images', 'randomErasing', x.dtype, TypeError);
  const [b, , height, width] = x.shape as [number, number, number, number];
  return scope(() => {
    const dev = generator?.device ?? 'cpu';
    // the boxes are read back to JS: drawn from the host generator when there is one (no device sync)
    const boxGenerator = hostGenerator ?? generator;
    const u = drawUniform([b, UNIFORMS_PER_IMAGE], boxGenerator?.device ?? 'cpu', boxGenerator, 'float64').toTypedArray() as Float64Array;
    const boxes = erasingBoxesFromUniforms(u, b, height, width, p);
    const noise = (generator === undefined ? randn(x.shape, { dtype: x.dtype, device: x.device }) : randn(x.shape, { dtype: x.dtype, device: dev, generator })).to({ device: x.device });
    if (boxes.every((v, i) => i % 4 !== 2 || v === 0)) return x.clone();
    const box = fromTypedArray(boxes, [b, 4], { device: x.device });
    const col = (k: number) => box.select(1, k).view(b, 1, 1);
    const rows = arange(0, height, 1, { device: x.device }).view(1, height, 1);
    const cols = arange(0, width, 1, { device: x.device }).view(1, 1, width);
    const top = col(0);
    const left = col(1);
    const inside = rows.ge(top).logicalAnd(rows.lt(top.add(col(2)))).logicalAnd(cols.ge(left).logicalAnd(cols.lt(left.add(col(3)))));
    return where(inside.unsqueeze(1), noise, x);
  });
}
