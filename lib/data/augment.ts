// Batched training augmentation for ExtreMA on the training device: random
// resized crop + horizontal flip (one grid_sample for the whole batch, on an
// axis-aligned affine grid), colour jitter and random grayscale (./color),
// then normalisation.
// Every random choice is per image and comes from one Generator, so the same
// seed gives the same views bit for bit.
//
// The recipe (ExtreMA paper, Table 4, and the authors' code):
// RandomResizedCrop(size, scale (0.2, 1), ratio (3/4, 4/3)), flip p 0.5,
// ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8, RandomGrayscale p 0.2, then
// per-channel normalisation. Table 4 compares what the student and teacher
// views share; see AugmentScheme.
import { fromTypedArray, tensor } from '../tensor/creation';
import { where } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { probability } from '../checks';
import { Tensor } from '../tensor/tensor';
import * as aten from '../tensor/ops.generated';
import type { Generator } from '../runtime/generator';
import { defaultNormalization, roundHalfEven } from './preprocess';
import { DEFAULT_JITTER, checkImages, checkNormalization, colorView, drawUniform, dropUndefined, jitterConfig, type JitterConfig } from './color';

/**
 * What the student and teacher views share (paper Table 4):
 * - 'none': no augmentation (masking only); both views are the plain image
 *   (the centred min(H, W) square resized to size; the image itself when it
 *   is already size x size), normalised.
 * - 'color': one colour-augmented view (jitter + grayscale) shared by both.
 * - 'crop': one random-resized-crop + flip view shared by both.
 * - 'crop+color': one crop + flip + colour view shared by both.
 * - 'two-views': two independent full augmentations, one per branch.
 * - 'shared-crop+color' (default, the authors' best): one crop + flip shared
 *   by both, then colour jitter and grayscale drawn independently per view.
 */
export type AugmentScheme = 'none' | 'color' | 'crop' | 'crop+color' | 'two-views' | 'shared-crop+color';

export const AUGMENT_SCHEMES: readonly AugmentScheme[] = Object.freeze(['none', 'color', 'crop', 'crop+color', 'two-views', 'shared-crop+color'] as AugmentScheme[]);

export interface AugmentConfig {
  /** Default 'shared-crop+color'. */
  scheme: AugmentScheme;
  /** Output side in pixels (square views). Default 224. */
  size: number;
  /** Crop area as a fraction of the image, [min, max] within (0, 1]. Default [0.2, 1]. */
  scale: [number, number];
  /** Crop aspect ratio w / h, [min, max], drawn log-uniformly. Default [3/4, 4/3]. */
  ratio: [number, number];
  /** Probability of a horizontal flip. Default 0.5. */
  flipP: number;
  /** ColorJitter strengths and the probability of applying it. Default brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, p 0.8. */
  jitter: JitterConfig;
  /** Probability of turning an image gray (3-channel images only). Default 0.2. */
  grayscaleP: number;
  /** Per-channel mean and std of the normalisation. Default: ImageNet for 3 channels, 0.5 / 0.5 for 1. */
  mean: number[];
  std: number[];
}

const CONFIG_KEYS: readonly string[] = ['scheme', 'size', 'scale', 'ratio', 'flipP', 'grayscaleP', 'mean', 'std'];

/**
 * What augmentConfig() takes: any subset of the config (jitter too, field by
 * field); `channels` (1 or 3; default 1 when a one-value mean or std is
 * given, else 3) picks the default mean/std.
 */
export type AugmentOptions = Partial<Omit<AugmentConfig, 'jitter'>> & { jitter?: Partial<JitterConfig>; channels?: 1 | 3 };

/** The full config from a partial one, with the defaults above; throws a RangeError/TypeError naming the bad field. */
export function augmentConfig(partial: AugmentOptions = {}): AugmentConfig {
  if (typeof partial !== 'object' || partial === null) throw new TypeError(`Expected an object of augmentation options but received ${String(partial)}`);
  const { channels: ch, jitter, ...rest } = dropUndefined(partial);
  const given = rest as Partial<AugmentConfig>;
  for (const k of Object.keys(given)) {
    if (!CONFIG_KEYS.includes(k)) throw new RangeError(`Unknown augmentation option "${k}"; expected some of channels, jitter, ${CONFIG_KEYS.join(', ')}`);
  }
  if (jitter !== undefined) {
    if (typeof jitter !== 'object' || jitter === null) throw new TypeError(`Expected an object for jitter but received ${String(jitter)}`);
    for (const k of Object.keys(jitter)) {
      if (!(k in DEFAULT_JITTER)) throw new RangeError(`Unknown jitter option "${k}"; expected some of ${Object.keys(DEFAULT_JITTER).join(', ')}`);
    }
  }
  if (ch !== undefined && ch !== 1 && ch !== 3) throw new RangeError(`Expected 1 or 3 channels but received ${String(ch)}`);
  const oneChannel = (v: unknown) => Array.isArray(v) && v.length === 1;
  const channels = ch ?? (oneChannel(given.mean) || oneChannel(given.std) ? 1 : 3);
  const norm = defaultNormalization(channels);
  const cfg: AugmentConfig = {
    scheme: 'shared-crop+color',
    size: 224,
    scale: [0.2, 1],
    ratio: [3 / 4, 4 / 3],
    flipP: 0.5,
    grayscaleP: 0.2,
    mean: norm.mean,
    std: norm.std,
    ...given,
    jitter: jitterConfig({ ...DEFAULT_JITTER, ...(jitter ?? {}) }),
  };
  checkConfig(cfg, channels);
  return { ...cfg, scale: [...cfg.scale], ratio: [...cfg.ratio], mean: [...cfg.mean], std: [...cfg.std], jitter: { ...cfg.jitter } };
}

function checkRange(r: unknown, what: string, lowOpen: number, high: number): [number, number] {
  if (!Array.isArray(r) || r.length !== 2 || !r.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new RangeError(`Expected ${what} as [min, max] but received ${JSON.stringify(r)}`);
  }
  const [a, b] = r as [number, number];
  if (a > b) throw new RangeError(`Expected ${what} as [min, max] with min <= max but received [${a}, ${b}]`);
  if (!(a > lowOpen) || !(b <= high)) throw new RangeError(`Expected ${what} within (${lowOpen}, ${high}] but received [${a}, ${b}]`);
  return [a, b];
}

/** @internal Validates a full config against the images' channel count. */
export function checkConfig(cfg: AugmentConfig, channels: number): void {
  if (typeof cfg !== 'object' || cfg === null) throw new TypeError(`Expected an augmentation config but received ${String(cfg)}`);
  if (!AUGMENT_SCHEMES.includes(cfg.scheme)) throw new RangeError(`Expected scheme to be one of ${AUGMENT_SCHEMES.map((s) => `'${s}'`).join(', ')} but received ${JSON.stringify(cfg.scheme)}`);
  if (!Number.isInteger(cfg.size) || cfg.size <= 0) throw new RangeError(`Expected a positive integer size but received ${String(cfg.size)}`);
  checkRange(cfg.scale, 'scale', 0, 1);
  checkRange(cfg.ratio, 'ratio', 0, Infinity);
  probability(cfg.flipP, 'flipP');
  probability(cfg.grayscaleP, 'grayscaleP');
  jitterConfig(cfg.jitter);
  checkNormalization(cfg.mean, cfg.std, channels);
}

// ---- crop geometry --------------------------------------------------------------

/**
 * Crop boxes for B images: a Float64Array of 4 B numbers, per image
 * [top, left, height, width] in pixels (the box covers rows top..top+height-1
 * and columns left..left+width-1).
 */
export type CropBoxes = Float64Array;

/** Uniforms drawn per image by randomResizedCropBoxes: 10 attempts x (area, log-ratio), then (row, column) of the box. */
export const CROP_UNIFORMS_PER_IMAGE = 22;

/**
 * Boxes from uniforms (CROP_UNIFORMS_PER_IMAGE per image, in [0, 1)) by
 * torchvision's RandomResizedCrop rule: up to 10 attempts of area
 * HW U(scale) and aspect ratio exp(U(log ratio)), w = round(sqrt(area r)),
 * h = round(sqrt(area / r)); the first that fits (0 < w <= W, 0 < h <= H)
 * is placed uniformly (top ~ U{0..H-h}, left ~ U{0..W-w}); if none fits, the
 * centre crop of the whole image clipped to the ratio range.
 */
export function cropBoxesFromUniforms(u: ArrayLike<number>, b: number, height: number, width: number, scale: [number, number], ratio: [number, number]): CropBoxes {
  checkRange(scale, 'scale', 0, 1);
  checkRange(ratio, 'ratio', 0, Infinity);
  if (u.length !== b * CROP_UNIFORMS_PER_IMAGE) throw new RangeError(`Expected ${b * CROP_UNIFORMS_PER_IMAGE} uniforms but received ${u.length}`);
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  const out = new Float64Array(4 * b);
  for (let i = 0; i < b; i++) {
    const o = i * CROP_UNIFORMS_PER_IMAGE;
    let found = false;
    for (let a = 0; a < 10 && !found; a++) {
      const target = area * (scale[0] + (scale[1] - scale[0]) * u[o + 2 * a]!);
      const r = Math.exp(logLo + (logHi - logLo) * u[o + 2 * a + 1]!);
      const w = roundHalfEven(Math.sqrt(target * r));
      const h = roundHalfEven(Math.sqrt(target / r));
      if (w > 0 && w <= width && h > 0 && h <= height) {
        out[4 * i] = Math.min(height - h, Math.floor(u[o + 20]! * (height - h + 1)));
        out[4 * i + 1] = Math.min(width - w, Math.floor(u[o + 21]! * (width - w + 1)));
        out[4 * i + 2] = h;
        out[4 * i + 3] = w;
        found = true;
      }
    }
    if (!found) {
      const inRatio = width / height;
      let w = width;
      let h = height;
      if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
      else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
      h = Math.max(1, Math.min(height, h));
      w = Math.max(1, Math.min(width, w));
      out[4 * i] = Math.floor((height - h) / 2);
      out[4 * i + 1] = Math.floor((width - w) / 2);
      out[4 * i + 2] = h;
      out[4 * i + 3] = w;
    }
  }
  return out;
}

/**
 * Random resized crop boxes for B images of height x width (see
 * cropBoxesFromUniforms for the rule). Draws B x 22 float64 uniforms from
 * `generator` (on its device; the CPU default generator when omitted) and
 * reads them back; the boxes are computed in JS (B numbers, no pixels).
 */
export function randomResizedCropBoxes(b: number, height: number, width: number, scale: [number, number], ratio: [number, number], generator?: Generator): CropBoxes {
  for (const [v, what] of [[b, 'the batch size'], [height, 'the height'], [width, 'the width']] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`Expected a positive integer for ${what} but received ${String(v)}`);
  }
  checkRange(scale, 'scale', 0, 1);
  checkRange(ratio, 'ratio', 0, Infinity);
  const u = scope(() => drawUniform([b, CROP_UNIFORMS_PER_IMAGE], generator?.device ?? 'cpu', generator, 'float64').toTypedArray() as Float64Array);
  return cropBoxesFromUniforms(u, b, height, width, scale, ratio);
}

/** The centred min(H, W) square of every image (the 'none' / 'color' views). */
export function centerSquareBoxes(b: number, height: number, width: number): CropBoxes {
  const s = Math.min(height, width);
  const out = new Float64Array(4 * b);
  for (let i = 0; i < b; i++) out.set([Math.floor((height - s) / 2), Math.floor((width - s) / 2), s, s], 4 * i);
  return out;
}

/**
 * Crops each image to its box and resizes it to size x size (bilinear) with
 * ONE batched grid_sample; images with a true `flip` flag are mirrored
 * left-right. images: float [B, C, H, W]; boxes: CropBoxes (fractional boxes
 * are allowed). Returns [B, C, size, size].
 *
 * Geometry: output column j of a box [left, left + w) samples the input at
 * x = left + (j + 0.5) w / size - 0.5 (pixel-centre convention, align_corners
 * false; the same for rows), clamped to the box's outermost pixel centres,
 * so the result is crop-then-resize: F.interpolate(crop, size, 'bilinear',
 * align_corners=False, antialias=False), up to the float32 rounding of the
 * sampling grid (~1e-6 on values in [0, 1]). No antialiasing: a strong
 * downscale aliases. The map is axis-aligned (scale, shift, mirror), so the
 * affine grid is separable: its B x size column and row coordinates are
 * computed in float64 in JS (clamped and mirrored there), rounded once to
 * float32, and broadcast into the [B, size, size, 2] grid; this replaces
 * affine_grid (whose batched matmul costs more than the sampling itself).
 * A flip is exactly torch.flip(..., [-1]) of the unflipped result (the same
 * columns, reversed), and a box equal to the whole image at the same size
 * (H = W = size) returns the image (or its mirror) exactly.
 */
export function resizedCrop(images: Tensor, boxes: CropBoxes | readonly number[], size: number, flip?: Tensor | ArrayLike<boolean | number>): Tensor {
  const x = checkImages(images);
  if (x.dtype !== 'float32' && x.dtype !== 'float64') throw new TypeError(`Expected float32 or float64 images for resizedCrop but received dtype ${x.dtype}`);
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`Expected a positive integer size but received ${String(size)}`);
  const [b, , height, width] = x.shape as [number, number, number, number];
  if (boxes === null || typeof boxes !== 'object' || boxes.length !== 4 * b) throw new RangeError(`Expected ${4 * b} box numbers ([top, left, height, width] per image) but received ${boxes?.length}`);
  let jsFlips: boolean[] | null = null;
  if (flip !== undefined && !(flip instanceof Tensor)) {
    if (typeof flip !== 'object' || flip === null || flip.length !== b) throw new RangeError(`Expected ${b} flip flags, one per image`);
    jsFlips = Array.from(flip, (v) => !!v);
  }
  if (flip instanceof Tensor && flip.numel !== b) throw new RangeError(`Expected ${b} flip flags, one per image, but received a tensor of shape [${flip.shape.join(', ')}]`);
  // Normalised sampling coordinates (grid_sample's align_corners=false
  // convention: pixel p sits at (2p + 1) / n - 1), per image and column / row.
  const cols = new Float64Array(b * size);
  const mirrored = flip instanceof Tensor ? new Float64Array(b * size) : null;
  const rows = new Float64Array(b * size);
  const isId = new Uint8Array(b);
  let identity = 0;
  const axis = (out: Float64Array, i: number, start: number, len: number, n: number, reverse: boolean) => {
    const lo = start;
    const hi = Math.max(start, start + len - 1);
    for (let j = 0; j < size; j++) {
      const p = Math.min(hi, Math.max(lo, start + ((j + 0.5) * len) / size - 0.5));
      out[i * size + (reverse ? size - 1 - j : j)] = (2 * p + 1) / n - 1;
    }
  };
  for (let i = 0; i < b; i++) {
    const top = boxes[4 * i]!;
    const left = boxes[4 * i + 1]!;
    const h = boxes[4 * i + 2]!;
    const w = boxes[4 * i + 3]!;
    if (![top, left, h, w].every(Number.isFinite) || h <= 0 || w <= 0 || top < 0 || left < 0 || top + h > height || left + w > width) {
      throw new RangeError(`Expected box ${i} ([top, left, height, width]) inside the ${height} x ${width} image with a positive size but received [${top}, ${left}, ${h}, ${w}]`);
    }
    axis(cols, i, left, w, width, jsFlips?.[i] ?? false);
    if (mirrored !== null) axis(mirrored, i, left, w, width, true);
    axis(rows, i, top, h, height, false);
    if (top === 0 && left === 0 && h === height && w === width && height === size && width === size) {
      isId[i] = 1;
      identity++;
    }
  }
  return scope(() => {
    const o = { dtype: x.dtype, device: x.device };
    let gx = fromTypedArray(cols, [b, size], o);
    const flips = flip instanceof Tensor ? flip.reshape(b).to({ device: x.device, dtype: 'bool' }) : null;
    if (flips !== null) gx = where(flips.view(b, 1), fromTypedArray(mirrored!, [b, size], o), gx);
    const gy = fromTypedArray(rows, [b, size], o);
    const grid = aten.cat([gx.view(b, 1, size, 1).expand(b, size, size, 1), gy.view(b, size, 1, 1).expand(b, size, size, 1)], 3);
    let out = aten.grid_sampler_2d(x, grid, 0 /* bilinear */, 1 /* border */, false);
    if (identity > 0) {
      // float32 grid coordinates move samples by up to ~1e-5 pixel; the
      // identity boxes take the pixels themselves.
      let src = x;
      if (flips !== null) src = where(flips.view(b, 1, 1, 1), x.flip(3), x);
      else if (jsFlips !== null && jsFlips.some((f, i) => f && isId[i])) src = where(tensor(jsFlips, { device: x.device }).view(b, 1, 1, 1), x.flip(3), x);
      out = where(fromTypedArray(isId, [b], { device: x.device, dtype: 'bool' }).view(b, 1, 1, 1), src, out);
    }
    return out;
  });
}

// ---- the pair ---------------------------------------------------------------------

export interface AugmentedPair {
  /** float32 [B, C, size, size], normalised. */
  student: Tensor;
  /** float32 [B, C, size, size], normalised. */
  teacher: Tensor;
}

/**
 * The student and teacher views of a batch. images: uint8 [B, C, H, W]
 * (C = 1 or 3, matching cfg.mean) on any device; the work runs there.
 * Returns float32 normalised views [B, C, cfg.size, cfg.size].
 *
 * Schemes that share one view ('none', 'color', 'crop', 'crop+color')
 * return two distinct handles on the same storage (an alias, no copy): the
 * caller disposes both, in any order. Random draws, in this order, from
 * `generator` (or the default generators when omitted; pass one for
 * reproducibility): crop uniforms (randomResizedCropBoxes, read back to JS)
 * and B flip uniforms per geometry, then per colour-augmented view B x 5
 * jitter uniforms, one randperm(4) order of the jitter ops for the batch and
 * B grayscale uniforms. 'two-views' draws the student's geometry, the
 * teacher's, then the student's colour and the teacher's.
 *
 * `hostGenerator` (a CPU generator) takes the draws that are read back to JS
 * (crop uniforms, the jitter order) when given: with `generator` on a GPU,
 * reading those back would make the host wait for the device every step.
 */
export function augmentPair(images: Tensor, cfg: AugmentConfig, generator?: Generator, hostGenerator?: Generator): AugmentedPair {
  if (hostGenerator !== undefined && hostGenerator.device !== 'cpu') throw new TypeError(`Expected a CPU generator for hostGenerator but received one on ${hostGenerator.device}`);
  const x0 = checkImages(images);
  if (x0.dtype !== 'uint8') throw new TypeError(`Expected uint8 images [B, C, H, W] but received dtype ${x0.dtype}`);
  const [b, c, height, width] = x0.shape as [number, number, number, number];
  if (b === 0 || height === 0 || width === 0) throw new RangeError(`Expected a non-empty batch but received shape [${x0.shape.join(', ')}]`);
  checkConfig(cfg, c);
  const { size } = cfg;
  return scope(() => {
    const x = x0.float();
    const device = x.device;
    // Every intermediate below is this call's own, so later steps overwrite
    // it in place (on CPU a fresh full-size tensor costs more than the pass).
    const plain = () => (height === size && width === size ? x : resizedCrop(x, centerSquareBoxes(b, height, width), size)).div_(255);
    const geometry = () => {
      const boxes = randomResizedCropBoxes(b, height, width, cfg.scale, cfg.ratio, hostGenerator ?? generator);
      const flips = drawUniform([b], device, generator).lt(cfg.flipP);
      return resizedCrop(x, boxes, size, flips).div_(255);
    };
    const norm = { mean: cfg.mean, std: cfg.std };
    const full = { ...norm, jitter: cfg.jitter, grayscaleP: cfg.grayscaleP };
    const shared = (v: Tensor): AugmentedPair => ({ student: v, teacher: aten.alias(v) });
    switch (cfg.scheme) {
      case 'none':
        return shared(colorView(plain(), norm, generator, true, hostGenerator));
      case 'color':
        return shared(colorView(plain(), full, generator, true, hostGenerator));
      case 'crop':
        return shared(colorView(geometry(), norm, generator, true, hostGenerator));
      case 'crop+color':
        return shared(colorView(geometry(), full, generator, true, hostGenerator));
      case 'two-views': {
        const gs = geometry();
        const gt = geometry();
        return { student: colorView(gs, full, generator, true, hostGenerator), teacher: colorView(gt, full, generator, true, hostGenerator) };
      }
      case 'shared-crop+color': {
        const g = geometry();
        const student = colorView(g, full, generator, false, hostGenerator);
        return { student, teacher: colorView(g, full, generator, true, hostGenerator) };
      }
    }
  });
}
