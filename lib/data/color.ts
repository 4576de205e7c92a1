// Colour augmentations on batches of float images in [0, 1], [B, C, H, W]
// with C = 1 or 3, written with tensor ops so that a whole batch runs in one
// pass on the images' device. Every factor is per image.
//
// Definitions (torchvision's ColorJitter and RandomGrayscale, written out
// here from their mathematical definitions):
//   grayscale        g = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2 luma, as
//                    PIL's "L" mode, which the authors' PIL pipeline used;
//                    torchvision's tensor path uses 0.2989 for R)
//   brightness f     x' = clamp(f x)
//   contrast f       x' = clamp(f x + (1 - f) m), m = mean of g over the image
//   saturation f     x' = clamp(f x + (1 - f) g)
//   hue f            rgb -> hsv, h' = (h + f) mod 1, hsv -> rgb
// clamp is to [0, 1] and follows every op (hue needs none: its result is
// always within [min, max] of the pixel's channels). For one-channel images g = x, so
// contrast blends with the image mean, and saturation, hue and grayscale are
// identities: they return a new handle on the input's storage (an alias, no
// copy), which the caller disposes like any result.
import { rand, randperm, tensor } from '../tensor/creation';
import type { Device } from '../tensor/device';
import { where } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { Tensor } from '../tensor/tensor';
import * as aten from '../tensor/ops.generated';
import { drawRows, type Generator } from '../runtime/generator';
import { probability } from '../checks';

/** A per-image factor: one number for the whole batch, B numbers, or a tensor of B values. */
export type Factor = number | readonly number[] | Tensor;

/** Strengths of ColorJitter (torchvision's meaning) and the probability of applying it to an image. */
export interface JitterConfig {
  /** Brightness factor ~ U[max(0, 1 - b), 1 + b]; 0 disables. Default 0.4. */
  brightness: number;
  /** Contrast factor ~ U[max(0, 1 - c), 1 + c]; 0 disables. Default 0.4. */
  contrast: number;
  /** Saturation factor ~ U[max(0, 1 - s), 1 + s]; 0 disables. Default 0.2. */
  saturation: number;
  /** Hue shift ~ U[-h, h], h in [0, 0.5]; 0 disables. Default 0.1. */
  hue: number;
  /** Probability that an image is jittered at all (RandomApply). Default 0.8. */
  p: number;
}

export const DEFAULT_JITTER: Readonly<JitterConfig> = Object.freeze({ brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 });

/** The four colour ops by name, in torchvision's index order (0..3). */
export const JITTER_OPS = Object.freeze(['brightness', 'contrast', 'saturation', 'hue'] as const);
export type JitterOp = (typeof JITTER_OPS)[number];

/** Explicit per-image jitter parameters, as drawn by {@link sampleJitter}. Omitted ops are skipped. */
export interface JitterFactors {
  brightness?: Factor;
  contrast?: Factor;
  saturation?: Factor;
  hue?: Factor;
  /** Order in which the ops run (default: brightness, contrast, saturation, hue). */
  order?: readonly JitterOp[];
  /** Per image: jitter (true) or leave the image exactly as it is (false). Default: all jittered. */
  apply?: readonly boolean[] | Tensor;
}

// ---- checks -----------------------------------------------------------------

/** @internal */
export function checkImages(x: unknown, what = 'the images'): Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`Expected a Tensor for ${what} but received ${Object.prototype.toString.call(x)}`);
  if (x.ndim !== 4) throw new RangeError(`Expected ${what} as [B, C, H, W] (4 dimensions) but received shape [${x.shape.join(', ')}]`);
  const c = x.shape[1];
  if (c !== 1 && c !== 3) throw new RangeError(`Expected 1 or 3 channels in ${what} but received ${String(c)} (shape [${x.shape.join(', ')}])`);
  return x;
}

function checkFloatImages(x: unknown, what = 'the images'): Tensor {
  const t = checkImages(x, what);
  if (t.dtype !== 'float32' && t.dtype !== 'float64' && t.dtype !== 'float16' && t.dtype !== 'bfloat16') {
    throw new TypeError(`Expected floating-point ${what} with values in [0, 1] but received dtype ${t.dtype}`);
  }
  return t;
}


/** @internal Checks jitter strengths and fills defaults. */
export function jitterConfig(partial: Partial<JitterConfig> = {}): JitterConfig {
  if (typeof partial !== 'object' || partial === null) throw new TypeError(`Expected an object for the jitter config but received ${String(partial)}`);
  const cfg: JitterConfig = { ...DEFAULT_JITTER, ...dropUndefined(partial) };
  for (const k of ['brightness', 'contrast', 'saturation'] as const) {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`Expected a finite number >= 0 for jitter.${k} but received ${String(v)}`);
  }
  if (typeof cfg.hue !== 'number' || !(cfg.hue >= 0 && cfg.hue <= 0.5)) throw new RangeError(`Expected a number in [0, 0.5] for jitter.hue but received ${String(cfg.hue)}`);
  probability(cfg.p, 'jitter.p');
  return cfg;
}

/** @internal */
export function dropUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** A factor as a [B, 1, 1, 1] tensor of x's dtype on x's device. */
function factorTensor(f: Factor, x: Tensor, what: string): Tensor {
  const b = x.shape[0]!;
  let t: Tensor;
  if (typeof f === 'number') {
    if (!Number.isFinite(f)) throw new RangeError(`Expected a finite ${what} factor but received ${f}`);
    return aten.full([b, 1, 1, 1], f, x.dtype, null, x.device);
  } else if (f instanceof Tensor) {
    if (f.numel !== b) throw new RangeError(`Expected ${b} ${what} factors, one per image, but received a tensor of shape [${f.shape.join(', ')}]`);
    t = f.to({ device: x.device, dtype: x.dtype });
  } else if (Array.isArray(f)) {
    if (f.length !== b) throw new RangeError(`Expected ${b} ${what} factors, one per image, but received ${f.length}`);
    if (!f.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new RangeError(`Expected finite ${what} factors but received ${JSON.stringify(f)}`);
    t = tensor([...(f as number[])], { dtype: x.dtype, device: x.device });
  } else {
    throw new TypeError(`Expected a number, an array or a Tensor for the ${what} factor but received ${String(f)}`);
  }
  return t.reshape(b, 1, 1, 1);
}

/** Per-image booleans as a bool tensor [B, 1, 1, 1] on `device`. */
function maskTensor(m: readonly boolean[] | Tensor, b: number, device: Device, what: string): Tensor {
  if (m instanceof Tensor) {
    if (m.numel !== b) throw new RangeError(`Expected ${b} values for ${what}, one per image, but received a tensor of shape [${m.shape.join(', ')}]`);
    return m.to({ device, dtype: 'bool' }).reshape(b, 1, 1, 1);
  }
  if (!Array.isArray(m) || m.length !== b) throw new RangeError(`Expected ${b} booleans for ${what}, one per image`);
  return tensor(m.map((v) => !!v), { device }).reshape(b, 1, 1, 1);
}

// ---- the ops ------------------------------------------------------------------
//
// Each op has an internal form taking `own`: when true, x is an intermediate
// the caller owns and no longer needs, and the op overwrites it (in-place
// passes avoid allocating a new full-size tensor, which on CPU costs more
// than the arithmetic). The exported functions never modify their input.

/** Luma 0.299 R + 0.587 G + 0.114 B as [B, 1, H, W]; a one-channel image is its own grayscale (an alias of x). */
export function rgbToGrayscale(x: Tensor): Tensor {
  checkFloatImages(x);
  if (x.shape[1] === 1) return aten.alias(x);
  return scope(() => luma(x));
}

function luma(x: Tensor): Tensor {
  return x.narrow(1, 0, 1).mul(0.299).add_(x.narrow(1, 1, 1).mul(0.587)).add_(x.narrow(1, 2, 1).mul(0.114));
}

/** The grayscale image replicated to x's channel count. */
export function grayscale(x: Tensor): Tensor {
  checkFloatImages(x);
  if (x.shape[1] === 1) return aten.alias(x);
  return scope(() => luma(x).expand(x.shape).contiguous());
}

/** clamp(f x + (1 - f) y, 0, 1) = clamp(x + (1 - f)(y - x), 0, 1), f [B, 1, 1, 1]; exact x where f = 1. */
function blendOp(x: Tensor, y: Tensor, f: Tensor, own: boolean): Tensor {
  const w = f.neg().add_(1);
  return (own ? aten.lerp__Tensor(x, y, w) : aten.lerp_Tensor(x, y, w)).clamp_(0, 1);
}

function brightnessOp(x: Tensor, f: Tensor, own: boolean): Tensor {
  return (own ? x.mul_(f) : x.mul(f)).clamp_(0, 1);
}

function contrastOp(x: Tensor, f: Tensor, own: boolean): Tensor {
  // The mean of the grayscale image, from the channel means (one pass over x).
  const cm = x.mean([2, 3], true);
  return blendOp(x, x.shape[1] === 1 ? cm : luma(cm), f, own);
}

function saturationOp(x: Tensor, f: Tensor, own: boolean): Tensor {
  return blendOp(x, luma(x), f, own);
}

/** Smallest divisor used where a difference or a maximum is 0 (the numerator is then 0 too). */
const TINY = 1e-30;

/**
 * The hue of each pixel times 6 (not reduced: in [-1, 5]), the maximum v and
 * the chroma v - min over the channels, each [B, 1, H, W]. Sector by the
 * channel holding the maximum (red wins ties, then green): (g - b) / chroma,
 * 2 + (b - r) / chroma, 4 + (r - g) / chroma; 0 for gray pixels.
 */
function hue6(x: Tensor): { h6: Tensor; v: Tensor; chroma: Tensor } {
  const r = x.narrow(1, 0, 1);
  const g = x.narrow(1, 1, 1);
  const b = x.narrow(1, 2, 1);
  const v = x.amax(1, true);
  const chroma = v.sub(x.amin(1, true));
  // One division: the sector offset is folded into the numerator.
  const num = where(v.eq(r), g.sub(b), where(v.eq(g), b.sub(r).add_(chroma, 2), r.sub(g).add_(chroma, 4)));
  return { h6: num.div_(chroma.clampMin(TINY)), v, chroma };
}

/**
 * The HSV-to-RGB map with c = v s the chroma: channel n is
 * v - c clamp(min(k, 4 - k), 0, 1), k = (n0 + h6) mod 6, n0 = 5, 3, 1 for
 * R, G, B. Since 1 - clamp(min(k, 4 - k), 0, 1) = clamp(|k - 2|, 1, 2) - 1
 * on [0, 6), this is (v - 2c) + c clamp(|u|, 1, 2) with u = k - 2 taken
 * around the circle into [-3, 3), u = ((h6 + n0 + 1) mod 6) - 3: the same
 * function in fewer full-size passes. Returns a new [B, 3, H, W] tensor.
 */
function fromHue6(h6: Tensor, v: Tensor, chroma: Tensor): Tensor {
  const offsets = tensor([6, 4, 2], { dtype: h6.dtype, device: h6.device }).view(1, 3, 1, 1);
  const u = h6.add(offsets);
  aten.remainder__Scalar(u, 6);
  aten.abs_(u.sub_(3));
  return u.clamp_(1, 2).mul_(chroma).add_(aten.sub_Tensor(v, chroma, 2));
}

/**
 * Hue rotation by f [B, 1, 1, 1]; where `unchanged` (float [B, 1, 1, 1], 1 or 0)
 * is 1 the image comes back exactly as it was. Always a new tensor (x is
 * read only); x's channels must be 3.
 */
function hueOp(x: Tensor, f: Tensor, unchanged: Tensor | null): Tensor {
  const { h6, v, chroma } = hue6(x);
  const y = fromHue6(h6.add_(f.mul(6)), v, chroma);
  // lerp with a weight of exactly 0 or 1 returns one end bit for bit.
  return unchanged === null ? y : aten.lerp__Tensor(y, x, unchanged);
}

/** clamp(f x, 0, 1). */
export function adjustBrightness(x: Tensor, factor: Factor): Tensor {
  checkFloatImages(x);
  return scope(() => brightnessOp(x, factorTensor(factor, x, 'brightness'), false));
}

/** clamp(f x + (1 - f) m, 0, 1), m the per-image mean of the grayscale image. */
export function adjustContrast(x: Tensor, factor: Factor): Tensor {
  checkFloatImages(x);
  return scope(() => contrastOp(x, factorTensor(factor, x, 'contrast'), false));
}

/** clamp(f x + (1 - f) gray(x), 0, 1); the identity (an alias of x) for one channel. */
export function adjustSaturation(x: Tensor, factor: Factor): Tensor {
  checkFloatImages(x);
  if (x.shape[1] === 1) return aten.alias(x);
  return scope(() => saturationOp(x, factorTensor(factor, x, 'saturation'), false));
}

/**
 * Rotates the hue by f (a fraction of the colour circle, in [-0.5, 0.5]):
 * rgb -> hsv, h + f mod 1, hsv -> rgb, fused (the chroma v s is carried as
 * it is, so value and saturation are kept; the result lies in [0, 1]
 * without a clamp). The identity (an alias of x) for one channel.
 */
export function adjustHue(x: Tensor, factor: Factor): Tensor {
  checkFloatImages(x);
  if (x.shape[1] === 1) return aten.alias(x);
  return scope(() => hueOp(x, factorTensor(factor, x, 'hue'), null));
}

/**
 * HSV of an RGB batch in [0, 1] as three [B, 1, H, W] tensors, h in [0, 1)
 * (h = 0 where the pixel is gray, s = 0 where it is black).
 */
export function rgbToHsv(x: Tensor): { h: Tensor; s: Tensor; v: Tensor } {
  checkFloatImages(x);
  if (x.shape[1] !== 3) throw new RangeError(`Expected 3 channels for rgbToHsv but received ${x.shape[1]}`);
  return scope(() => {
    const { h6, v, chroma } = hue6(x);
    return { h: h6.div(6).remainder(1), s: chroma.div(v.clampMin(TINY)), v };
  });
}

/** RGB [B, 3, H, W] from HSV (each [B, 1, H, W]; h taken mod 1, s and v in [0, 1]). */
export function hsvToRgb(h: Tensor, s: Tensor, v: Tensor): Tensor {
  return scope(() => fromHue6(h.mul(6), v, v.mul(s)));
}

function checkOrder(order: unknown): readonly JitterOp[] {
  if (!Array.isArray(order) || order.length > 4 || new Set(order).size !== order.length || !order.every((o) => (JITTER_OPS as readonly string[]).includes(o))) {
    throw new RangeError(`Expected an order made of distinct ops among ${JITTER_OPS.join(', ')} but received ${JSON.stringify(order)}`);
  }
  return order as JitterOp[];
}

/**
 * The jitter ops in order. Images whose apply flag is false get identity
 * factors (brightness 1, contrast and saturation 1: exact for x in [0, 1])
 * and are taken back from before the hue step, so they come out bit for bit.
 */
function jitterOp(x: Tensor, factors: JitterFactors, own: boolean): Tensor {
  const order = checkOrder(factors.order ?? JITTER_OPS);
  const b = x.shape[0]!;
  const apply = factors.apply === undefined ? null : maskTensor(factors.apply, b, x.device, 'apply');
  const effective = (f: Factor, what: string, identity: number) => {
    const t = factorTensor(f, x, what);
    return apply === null ? t : where(apply, t, identity);
  };
  let y = x;
  let mine = own;
  for (const op of order) {
    const f = factors[op];
    if (f === undefined) continue;
    if (op === 'brightness') y = brightnessOp(y, effective(f, op, 1), mine);
    else if (op === 'contrast') y = contrastOp(y, effective(f, op, 1), mine);
    else if (op === 'saturation') {
      if (x.shape[1] === 1) continue;
      y = saturationOp(y, effective(f, op, 1), mine);
    } else {
      if (x.shape[1] === 1) continue;
      y = hueOp(y, factorTensor(f, x, op), apply === null ? null : apply.logicalNot().to(x.dtype));
    }
    mine = true;
  }
  return y;
}

/**
 * Applies the given colour ops in `order` (default brightness, contrast,
 * saturation, hue) with per-image factors to x in [0, 1]; images whose
 * `apply` entry is false come back bit-exactly unchanged.
 */
export function applyColorJitter(x: Tensor, factors: JitterFactors): Tensor {
  checkFloatImages(x);
  checkOrder(factors.order ?? JITTER_OPS);
  return scope(() => {
    const y = jitterOp(x, factors, false);
    return y === x ? aten.alias(x) : y;
  });
}

/** Uniforms on [0, 1) drawn from `generator` (or the device's default one) and moved to `device`. */
export function drawUniform(shape: number[], device: Device, generator?: Generator, dtype: 'float32' | 'float64' = 'float32'): Tensor {
  if (generator === undefined) return rand(shape, { device, dtype });
  const u = drawRows(shape, generator, (rows) => rand(rows, { generator, device: generator.device, dtype }));
  if (u.device === device) return u;
  return scope(() => u.to({ device }));
}

/**
 * Draws jitter parameters for a batch of B images: one tensor of B x 5
 * uniforms (apply, brightness, contrast, saturation, hue) then one random
 * order of the four ops for the whole batch (randperm(4)), both from
 * `generator` (the order from `hostGenerator` when given: it is read back
 * to JS). Ops whose strength is 0 are left out. Factors are [B] tensors on
 * `device`.
 */
export function sampleJitter(b: number, cfg: Partial<JitterConfig>, device: Device, generator?: Generator, hostGenerator?: Generator): JitterFactors & { apply: Tensor; order: JitterOp[] } {
  const c = jitterConfig(cfg);
  return scope(() => {
    const u = drawUniform([b, 5], device, generator);
    // the order is read back to JS: from the host generator when there is one (no device sync)
    const g = hostGenerator ?? generator;
    const permT = g === undefined ? randperm(4) : randperm(4, { generator: g, device: g.device });
    const perm = Array.from(permT.toTypedArray() as BigInt64Array, (v) => JITTER_OPS[Number(v)]!);
    const col = (i: number) => u.select(1, i);
    const range = (i: number, lo: number, hi: number) => col(i).mul(hi - lo).add(lo);
    const out: JitterFactors & { apply: Tensor; order: JitterOp[] } = { apply: col(0).lt(c.p), order: perm.filter((op) => c[op] > 0) };
    if (c.brightness > 0) out.brightness = range(1, Math.max(0, 1 - c.brightness), 1 + c.brightness);
    if (c.contrast > 0) out.contrast = range(2, Math.max(0, 1 - c.contrast), 1 + c.contrast);
    if (c.saturation > 0) out.saturation = range(3, Math.max(0, 1 - c.saturation), 1 + c.saturation);
    if (c.hue > 0) out.hue = range(4, -c.hue, c.hue);
    return out;
  });
}

/**
 * RandomApply(ColorJitter, p) on a batch: each image is jittered with
 * probability p, with its own factors; the order of the four ops is drawn
 * once per call (torchvision draws it per image; one order per batch keeps
 * the batch a single pass). See {@link sampleJitter} for what is drawn.
 */
export function colorJitter(x: Tensor, cfg: Partial<JitterConfig> = {}, generator?: Generator, hostGenerator?: Generator): Tensor {
  checkFloatImages(x);
  return scope(() => {
    const y = jitterOp(x, sampleJitter(x.shape[0]!, cfg, x.device, generator, hostGenerator), false);
    return y === x ? aten.alias(x) : y;
  });
}

function grayscaleOp(x: Tensor, p: number, generator: Generator | undefined, own: boolean): Tensor {
  const u = drawUniform([x.shape[0]!], x.device, generator);
  if (x.shape[1] === 1) return x;
  const gray = u.lt(p).view(-1, 1, 1, 1);
  // lerp with a weight of exactly 0 or 1 returns one end bit for bit.
  return own ? aten.lerp__Tensor(x, luma(x), gray.to(x.dtype)) : where(gray, luma(x), x);
}

/**
 * Replaces each image by its grayscale (replicated over the channels) with
 * probability p; draws B uniforms from `generator` (also for one-channel
 * images, which come back unchanged, as an alias of x).
 */
export function randomGrayscale(x: Tensor, p: number, generator?: Generator): Tensor {
  checkFloatImages(x);
  probability(p, 'the grayscale probability');
  return scope(() => {
    const y = grayscaleOp(x, p, generator, false);
    return y === x ? aten.alias(x) : y;
  });
}

function normalizeOp(x: Tensor, mean: readonly number[], std: readonly number[], own: boolean): Tensor {
  const c = x.shape[1]!;
  const m = tensor([...mean], { dtype: x.dtype, device: x.device }).view(1, c, 1, 1);
  const s = tensor([...std], { dtype: x.dtype, device: x.device }).view(1, c, 1, 1);
  return own ? x.sub_(m).div_(s) : x.sub(m).div(s);
}

/** (x - mean[c]) / std[c] per channel. */
export function normalize(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  checkFloatImages(x);
  checkNormalization(mean, std, x.shape[1]!);
  return scope(() => normalizeOp(x, mean, std, false));
}

/**
 * @internal One view of the training pipeline from float images in [0, 1]:
 * optional colour jitter and random grayscale, then normalisation. With
 * `own`, x is overwritten (the caller's intermediate); draws as colorJitter
 * then randomGrayscale.
 */
export function colorView(
  x: Tensor,
  o: { jitter?: JitterConfig; grayscaleP?: number; mean: readonly number[]; std: readonly number[] },
  generator: Generator | undefined,
  own: boolean,
  hostGenerator?: Generator,
): Tensor {
  return scope(() => {
    let y = x;
    let mine = own;
    if (o.jitter !== undefined) {
      y = jitterOp(y, sampleJitter(x.shape[0]!, o.jitter, x.device, generator, hostGenerator), mine);
      mine ||= y !== x;
    }
    if (o.grayscaleP !== undefined) {
      y = grayscaleOp(y, o.grayscaleP, generator, mine);
      mine ||= y !== x;
    }
    return normalizeOp(y, o.mean, o.std, mine);
  });
}

/** @internal */
export function checkNormalization(mean: unknown, std: unknown, c: number): void {
  if (!Array.isArray(mean) || mean.length !== c) throw new RangeError(`Expected ${c} mean value(s), one per channel, but received ${JSON.stringify(mean)}`);
  if (!Array.isArray(std) || std.length !== c) throw new RangeError(`Expected ${c} std value(s), one per channel, but received ${JSON.stringify(std)}`);
  if (!mean.every((m) => typeof m === 'number' && Number.isFinite(m))) throw new RangeError(`Expected finite mean values but received ${JSON.stringify(mean)}`);
  if (!std.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0)) throw new RangeError(`Expected finite std values > 0 but received ${JSON.stringify(std)}`);
}
